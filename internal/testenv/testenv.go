// Package testenv says what a test does when the machine lacks something
// it needs. Under CI=true, where the project's scripts install everything,
// the test fails; elsewhere it is skipped with the reason.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Missing fails the test under CI and skips it elsewhere.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// LookPath finds a program on the PATH, or in the other places given (for
// Debian's daemons under /usr/sbin), or calls Missing, naming what for.
func LookPath(t testing.TB, what string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	Missing(t, "%s needs %s (make test installs what it can)", what, names[0])
	return ""
}
