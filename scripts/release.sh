#!/usr/bin/env bash
# Release archives of baton: for each target GOOS/GOARCH, a .tar.gz holding the
# binary (stamped with its version, see baton --version), LICENSE, README.md and
# CHANGELOG.md; then SHA256SUMS over the archives (sha256sum -c SHA256SUMS).
# The archives are reproducible: the same commit and version give the same bytes.
#
#   make release                                   # every target, into dist/
#   VERSION=v0.2.0 TARGETS=linux/amd64 OUT=/tmp/r scripts/release.sh
#
# VERSION defaults to the tag on HEAD (git describe), else a Go-style
# pseudo-version of the commit, v0.0.0-YYYYMMDDHHMMSS-abcdef123456 (+dirty
# when the work tree has changes).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=${TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
out=${OUT:-dist}
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
version=${VERSION:-$(git describe --tags --exact-match --match 'v*' 2>/dev/null ||
	echo "v0.0.0-$(date -u -d "@$epoch" +%Y%m%d%H%M%S)-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)")}
if [ -z "${VERSION:-}" ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
	version+="+dirty"
fi
case $version in
v[0-9]*) ;;
*) echo "release: VERSION=$version: want a semantic version starting with v, e.g. v0.2.0" >&2; exit 2 ;;
esac

mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
archives=()
for target in $targets; do
	os=${target%/*} arch=${target#*/}
	name="baton_${version#v}_${os}_${arch}"
	mkdir -p "$stage/$name"
	echo "release: building $name"
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=auto \
		-ldflags "-s -w -buildid= -X main.version=$version" -o "$stage/$name/baton" ./cmd/baton
	cp LICENSE README.md CHANGELOG.md "$stage/$name/"
	tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner -C "$stage" -cf - "$name" |
		gzip -n -9 >"$out/$name.tar.gz"
	archives+=("$name.tar.gz")
done
(cd "$out" && sha256sum "${archives[@]}" >SHA256SUMS)
echo "release: $version in $out/ (${#archives[@]} archives and SHA256SUMS)"
