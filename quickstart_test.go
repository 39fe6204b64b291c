package baton_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
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
// server listens outside it), from a clone in a private (0700) folder, as
// root, as a newcomer who clones into their home directory would, then
// follows what it prints: the curl, and the README's next steps with the
// DATABASE_URL it says to export; then `make demo` on the same cluster.
// Neither says it starts the machine's cluster (which runs, outside the
// namespace). Another local user cannot get into the cluster it made:
// before, it trusted every connection on 127.0.0.1, and its socket let
// anyone in as superuser (COPY … TO PROGRAM ran as its owner).
func TestMakeRunWithoutPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	if os.Getuid() != 0 {
		testenv.Missing(t, "a network namespace needs root")
	}
	for _, tool := range []string{"ip", "make", "curl", "useradd", "userdel", "runuser"} {
		testenv.LookPath(t, "make run's test", tool)
	}
	// A clone in a private folder (the work tree's files, committed or
	// not), built outside the namespace, where the module proxy is
	// reachable.
	tmp := t.TempDir()
	require.NoError(t, os.Chmod(tmp, 0o700))
	clone := filepath.Join(tmp, "baton")
	copyWorkTree(t, clone)
	build := exec.Command("make", "build")
	build.Dir = clone
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	ns := fmt.Sprintf("baton-run-%d", os.Getpid())
	out, err = exec.Command("ip", "netns", "add", ns).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	out, err = exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput()
	require.NoError(t, err, "%s", out)

	// The cluster runs as postgres, which cannot enter the clone's folder.
	dev := filepath.Join(clone, ".baton")
	env := append(os.Environ(), "DATABASE_URL=", "BATON_DEV_DIR=")
	inNS := func(args ...string) *exec.Cmd {
		c := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
		c.Env = env
		c.Dir = clone
		return c
	}

	run := inNS("make", "run")
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr testenv.Buffer // read while make run writes it
	run.Stderr = &stderr
	stdout, err := run.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, run.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-run.Process.Pid, syscall.SIGINT)
		_ = run.Wait()
		out, err := inNS("make", "stop").CombinedOutput()
		require.NoError(t, err, "%s", out)
		// The cluster's data: in a folder of postgres's own, named for dev.
		sum := sha256.Sum256([]byte(dev))
		require.NoError(t, os.RemoveAll(filepath.Join("/var/lib/postgresql/baton-dev", hex.EncodeToString(sum[:])[:16])))
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
	require.NotContains(t, url, ":"+"postgres@", "no password in the URL")
	info, err := os.Stat(filepath.Join(dev, "pgpass"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the password is its owner's only")

	// Another local user gets in neither over TCP nor through the socket.
	other := fmt.Sprintf("baton-other-%d", os.Getpid())
	out, err = exec.Command("useradd", "--no-create-home", "--shell", "/bin/sh", other).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("userdel", other).Run() })
	sockets, _ := filepath.Glob("/var/lib/postgresql/baton-dev/*")
	require.NotEmpty(t, sockets)
	for _, host := range append([]string{"127.0.0.1"}, sockets...) {
		c := inNS("runuser", "-u", other, "--", "psql", "-X", "-w", "-h", host, "-p", "54329", "-U", "postgres", "-d", "postgres",
			"-c", "SELECT 1")
		c.Dir = "/"
		out, err := c.CombinedOutput()
		require.Error(t, err, "user %s got in through %s: %s", other, host, out)
		require.Regexp(t, `password|Permission denied|No such file`, string(out), host)
	}

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

	// make demo, on the same cluster.
	out, err = inNS("make", "demo").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "Database: postgres://postgres@127.0.0.1:54329/baton")
	require.Contains(t, string(out), "==> baton report")
	for _, said := range []string{stderr.String(), string(out)} {
		require.NotContains(t, said, "starting PostgreSQL cluster", "the machine's cluster runs outside the namespace")
		require.NotContains(t, said, "already running")
	}
}

// copyWorkTree copies the files git tracks (as they are now) to dir.
func copyWorkTree(t *testing.T, dir string) {
	t.Helper()
	files, err := exec.Command("git", "ls-files", "-z").Output()
	require.NoError(t, err)
	for _, name := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		info, err := os.Lstat(name)
		if os.IsNotExist(err) {
			continue // deleted, not yet committed
		}
		require.NoError(t, err)
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		to := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(to), 0o755))
		require.NoError(t, os.WriteFile(to, b, info.Mode().Perm()))
	}
}

// TestMakeRunAsAUser is make run's quick start for a user who is not root,
// from a clone in their own private (0700) folder, where nothing answers on
// 5432: the cluster is theirs, in the clone's .baton/, and the curl it
// prints works.
func TestMakeRunAsAUser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster of its own")
	}
	if os.Getuid() != 0 {
		testenv.Missing(t, "a network namespace and a user of its own need root")
	}
	for _, tool := range []string{"ip", "make", "curl", "useradd", "userdel", "runuser", "chown"} {
		testenv.LookPath(t, "make run's test", tool)
	}
	user := fmt.Sprintf("baton-dev-%d", os.Getpid())
	home, err := os.MkdirTemp("", "baton-user-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(home) })
	out, err := exec.Command("useradd", "--home-dir", home, "--shell", "/bin/sh", user).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("userdel", user).Run() })

	clone := filepath.Join(home, "baton")
	copyWorkTree(t, clone)
	build := exec.Command("make", "build") // as root, where the module cache is
	build.Dir = clone
	out, err = build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command("chown", "-R", user+":", home).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.Chmod(home, 0o700))

	ns := fmt.Sprintf("baton-user-%d", os.Getpid())
	out, err = exec.Command("ip", "netns", "add", ns).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	out, err = exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput()
	require.NoError(t, err, "%s", out)
	asUser := func(args ...string) *exec.Cmd {
		c := exec.Command("ip", append([]string{"netns", "exec", ns, "runuser", "-u", user, "--"}, args...)...)
		c.Env = append(os.Environ(), "HOME="+home, "DATABASE_URL=", "BATON_DEV_DIR=")
		c.Dir = clone
		return c
	}

	// make run is make build (done) and scripts/dev.sh: the user has no Go
	// module cache of their own.
	run := asUser("scripts/dev.sh")
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr testenv.Buffer // read while make run writes it
	run.Stderr = &stderr
	stdout, err := run.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, run.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-run.Process.Pid, syscall.SIGINT)
		_ = run.Wait()
		out, err := asUser("bash", "-c", ". scripts/postgres.sh && stop_local_cluster .baton").CombinedOutput()
		require.NoError(t, err, "%s", out)
	})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- strings.TrimSpace(sc.Text())
		}
		close(lines)
	}()
	var curl string
	timeout := time.After(3 * time.Minute)
	for curl == "" {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "make run ended; stderr:\n%s", stderr.String())
			if strings.HasPrefix(l, "curl -sS -X POST") {
				curl = l
			}
		case <-timeout:
			t.Fatalf("make run printed no quick start in 3 minutes; stderr:\n%s", stderr.String())
		}
	}
	_, err = os.Stat(filepath.Join(clone, ".baton", "data", "PG_VERSION"))
	require.NoError(t, err, "the user's cluster is in the clone")
	out, err = asUser("sh", "-c", curl).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), `"queue":"resize"`)
	require.NotContains(t, stderr.String(), "starting PostgreSQL cluster")
}
