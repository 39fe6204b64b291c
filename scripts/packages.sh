# Sourced by scripts/chromium.sh and scripts/pgbouncer.sh: the programs some
# tests drive come from Debian's packages (never downloaded binaries).

# ensure_package CMD PACKAGE WHAT installs Debian's PACKAGE when CMD is
# missing, for WHAT. Where it cannot be installed, CI fails and elsewhere
# the tests that need it are skipped.
ensure_package() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing $2 from Debian's packages for $3" >&2
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; } >&2
	elif [ "${CI:-}" = true ]; then
		echo "CI needs $2 for $3: install Debian's $2 package" >&2
		return 1
	else
		echo "no $1: $3 will be skipped" >&2
	fi
}
