package baton_test

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/stretchr/testify/require"
)

// TestReleaseBuildsOneTarget runs make release's script for this machine's
// target: an archive with the binary, its license and notes, a SHA256SUMS
// that verifies it, and a binary that says its version.
func TestReleaseBuildsOneTarget(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	target := runtime.GOOS + "/" + runtime.GOARCH
	cmd := exec.Command("scripts/release.sh")
	cmd.Env = append(os.Environ(), "VERSION=v1.2.3-test", "TARGETS="+target, "OUT="+out)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))

	name := "baton_1.2.3-test_" + runtime.GOOS + "_" + runtime.GOARCH + ".tar.gz"
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	require.NoError(t, err)
	archive, err := os.ReadFile(filepath.Join(out, name))
	require.NoError(t, err)
	sum := sha256.Sum256(archive)
	require.Equal(t, hex.EncodeToString(sum[:])+"  "+name+"\n", string(sums), "sha256sum -c SHA256SUMS verifies the archive")

	unpacked := t.TempDir()
	files := untar(t, filepath.Join(out, name), unpacked)
	dir := filepath.Join(unpacked, strings.TrimSuffix(name, ".tar.gz"))
	prefix := strings.TrimSuffix(name, ".tar.gz") + "/"
	require.ElementsMatch(t, []string{prefix + "baton", prefix + "LICENSE", prefix + "README.md", prefix + "CHANGELOG.md"}, files)
	license, err := os.ReadFile("LICENSE")
	require.NoError(t, err)
	packed, err := os.ReadFile(filepath.Join(dir, "LICENSE"))
	require.NoError(t, err)
	require.Equal(t, string(license), string(packed))
	require.Contains(t, string(license), "Apache License\n                           Version 2.0")

	version, err := exec.Command(filepath.Join(dir, "baton"), "--version").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(version), "baton v1.2.3-test (commit "), "baton --version said %q", version)
}

// untar unpacks a .tar.gz into dir and returns the names it held.
func untar(t *testing.T, archive, dir string) []string {
	t.Helper()
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		require.NoError(t, err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		names = append(names, h.Name)
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, fs.FileMode(h.Mode))
		require.NoError(t, err)
		_, err = io.Copy(w, tr)
		require.NoError(t, err)
		require.NoError(t, w.Close())
	}
}

// TestImageIsPinnedAndLabelled: every base image of the Dockerfile names a
// digest, and the image says what it is, where it comes from and its license.
func TestImageIsPinnedAndLabelled(t *testing.T) {
	t.Parallel()
	dockerfile, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	args := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ARG (\w+)=(\S+)$`).FindAllStringSubmatch(string(dockerfile), -1) {
		args[m[1]] = m[2]
	}
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(string(dockerfile), -1)
	require.Len(t, froms, 2)
	for _, m := range froms {
		image := m[1]
		if v, ok := args[strings.Trim(image, "${}")]; ok {
			image = v
		}
		require.Regexp(t, `^[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}$`, image, "FROM %s is pinned by digest", m[1])
	}
	for _, label := range []string{"title", "source", "licenses=\"Apache-2.0\"", "version", "revision"} {
		require.Contains(t, string(dockerfile), "org.opencontainers.image."+label)
	}
}

// TestBuildContextIsSmall reads .dockerignore with Docker's own matcher: the
// context docker build sends leaves out history, build outputs and the local
// cluster's data, keeps what the Dockerfile copies, and stays small.
func TestBuildContextIsSmall(t *testing.T) {
	t.Parallel()
	f, err := os.Open(".dockerignore")
	require.NoError(t, err)
	defer f.Close()
	patterns, err := ignorefile.ReadAll(bufio.NewReader(f))
	require.NoError(t, err)
	pm, err := patternmatcher.New(patterns)
	require.NoError(t, err)
	excluded := func(p string) bool {
		ok, err := pm.MatchesOrParentMatches(p)
		require.NoError(t, err)
		return ok
	}
	for _, p := range []string{".git/HEAD", ".baton/data/PG_VERSION", "bin/baton", "baton", "dist/SHA256SUMS",
		"clients/typescript/node_modules/openapi-typescript/package.json"} {
		require.True(t, excluded(p), "%s is in the build context", p)
	}
	for _, p := range []string{"go.mod", "go.sum", "LICENSE", "cmd/baton/main.go", "migrations/000001_init.up.sql", "examples/pipeline.yaml"} {
		require.False(t, excluded(p), "%s is left out of the build context", p)
	}

	var size int64
	require.NoError(t, filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		if excluded(filepath.ToSlash(p)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			size += info.Size()
		}
		return nil
	}))
	require.Less(t, size, int64(10<<20), "the build context is %d bytes", size)
}
