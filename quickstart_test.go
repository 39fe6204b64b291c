package baton_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/testenv"
)

// TestMakeRunWithoutPostgres runs the README's `make run` where nothing
// answers on 127.0.0.1:5432 (a fresh network namespace: the machine's own
// server listens outside it), then follows what it prints: the curl, and the
// README's next steps with the DATABASE_URL it says to export.
func TestMakeRunWithoutPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	if os.Getuid() != 0 {
		testenv.Missing(t, "a network namespace needs root")
	}
	for _, tool := range []string{"ip", "make", "curl"} {
		testenv.LookPath(t, "make run's test", tool)
	}
	// Built outside the namespace, where the module proxy is reachable.
	out, err := exec.Command("make", "build").CombinedOutput()
	require.NoError(t, err, "%s", out)

	ns := fmt.Sprintf("baton-run-%d", os.Getpid())
	out, err = exec.Command("ip", "netns", "add", ns).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	out, err = exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput()
	require.NoError(t, err, "%s", out)

	// The cluster runs as postgres, which must reach its folder.
	tmp := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(tmp), 0o755))
	require.NoError(t, os.Chmod(tmp, 0o755))
	env := append(os.Environ(), "BATON_DEV_DIR="+filepath.Join(tmp, "dev"), "DATABASE_URL=")
	inNS := func(args ...string) *exec.Cmd {
		c := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
		c.Env = env
		return c
	}

	run := inNS("make", "run")
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr strings.Builder
	run.Stderr = &stderr
	stdout, err := run.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, run.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-run.Process.Pid, syscall.SIGINT)
		_ = run.Wait()
		out, err := inNS("make", "stop").CombinedOutput()
		require.NoError(t, err, "%s", out)
	})

	printed := make(chan []string, 1)
	go func() {
		var lines []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, strings.TrimSpace(sc.Text()))
			if sc.Text() == "Stop with Ctrl-C." {
				printed <- lines
				return
			}
		}
		printed <- lines
	}()
	var lines []string
	select {
	case lines = <-printed:
	case <-time.After(3 * time.Minute):
		t.Fatalf("make run printed no quick start in 3 minutes; stderr:\n%s", stderr.String())
	}
	find := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("make run printed no line starting %q:\n%s\nstderr:\n%s", prefix, strings.Join(lines, "\n"), stderr.String())
		return ""
	}
	require.Contains(t, find("Database: "), "postgres://postgres@127.0.0.1:54329/baton")
	exportLine := find("export DATABASE_URL=")
	url := strings.Trim(strings.TrimPrefix(exportLine, "export DATABASE_URL="), "'")

	// The curl it prints, pasted.
	out, err = inNS("sh", "-c", find("curl -sS -X POST")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), `"queue":"resize"`)

	// The README's next steps, in another shell that exported the URL.
	baton := func(args ...string) string {
		c := inNS(append([]string{"bin/baton"}, args...)...)
		c.Env = append(c.Env, "DATABASE_URL="+url)
		out, err := c.CombinedOutput()
		require.NoError(t, err, "baton %s: %s", strings.Join(args, " "), out)
		return string(out)
	}
	id := strings.TrimSpace(baton("submit", "resize", `{"image": "cat.png"}`))
	require.Eventually(t, func() bool {
		return strings.Contains(baton("status", id), `"state": "succeeded"`)
	}, time.Minute, 100*time.Millisecond)
	require.Contains(t, baton("report", "queue_summary"), "publish")
}
