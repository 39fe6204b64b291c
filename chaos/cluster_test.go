//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// cluster is a PostgreSQL cluster of the suite's own, made with
// pg_createcluster, so restarting it disturbs nothing else.
type cluster struct {
	version, name string
	port          int
}

// newCluster makes and starts a cluster named chaos_PID, or chaos_PID_ROLE
// for a role other than "" (the failover pair).
func newCluster(role string) (*cluster, error) {
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		return nil, fmt.Errorf("pg_createcluster not found (Debian's postgresql-common): %w", err)
	}
	version, err := pgVersion()
	if err != nil {
		return nil, err
	}
	dropStaleClusters(version)
	c := &cluster{version: version, name: clusterName(role), port: freePort()}
	if err := c.create("--start", "-o", "fsync=on", "-o", "synchronous_commit=on"); err != nil {
		return nil, err
	}
	if err := c.waitReady(30 * time.Second); err != nil {
		c.drop()
		return nil, err
	}
	return c, nil
}

// create runs pg_createcluster for c with trust authentication and room
// for every scenario's connections, plus args; on failure, nothing is left.
func (c *cluster) create(args ...string) error {
	args = append([]string{c.version, c.name, "-p", strconv.Itoa(c.port), "-o", "max_connections=300"}, args...)
	out, err := exec.Command("pg_createcluster", append(args, "--", "-A", "trust")...).CombinedOutput()
	if err != nil {
		c.drop()
		return fmt.Errorf("pg_createcluster: %v\n%s", err, out)
	}
	return nil
}

// dataDir is where Debian's pg_createcluster keeps c's files.
func (c *cluster) dataDir() string {
	return fmt.Sprintf("/var/lib/postgresql/%s/%s", c.version, c.name)
}

func clusterName(role string) string {
	if role == "" {
		return fmt.Sprintf("chaos_%d", os.Getpid())
	}
	return fmt.Sprintf("chaos_%d_%s", os.Getpid(), role)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newStandby makes a hot standby of c: a base backup streaming from c
// through a replication slot. With synchronous_standby_names set on c, c's
// commits wait until this standby has them.
func (c *cluster) newStandby(role string) (*cluster, error) {
	s := &cluster{version: c.version, name: clusterName(role), port: freePort()}
	if err := s.create(); err != nil {
		return nil, err
	}
	data := s.dataDir()
	steps := [][]string{
		{"find", data, "-mindepth", "1", "-delete"},
		// As the cluster's owner, so that the copy is the server's to read.
		{"runuser", "-u", "postgres", "--", "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port),
			"-U", "postgres", "-D", data, "-X", "stream", "-R", "-C", "-S", strings.ReplaceAll(s.name, "-", "_"),
			"--checkpoint=fast"},
		{"pg_ctlcluster", s.version, s.name, "start"},
	}
	if os.Geteuid() != 0 {
		steps[1] = steps[1][4:]
	}
	for _, step := range steps {
		if out, err := exec.Command(step[0], step[1:]...).CombinedOutput(); err != nil {
			s.drop()
			return nil, fmt.Errorf("%s: %v\n%s", strings.Join(step, " "), err, out)
		}
	}
	if err := s.waitReady(30 * time.Second); err != nil {
		s.drop()
		return nil, err
	}
	return s, nil
}

func pgVersion() (string, error) {
	entries, err := os.ReadDir("/usr/lib/postgresql")
	if err != nil || len(entries) == 0 {
		return "", fmt.Errorf("no PostgreSQL under /usr/lib/postgresql")
	}
	return entries[len(entries)-1].Name(), nil
}

// dropStaleClusters removes clusters left by killed runs (their pid is gone).
func dropStaleClusters(version string) {
	out, _ := exec.Command("pg_lsclusters", "--no-header").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != version || !strings.HasPrefix(f[1], "chaos_") {
			continue
		}
		pidText, _, _ := strings.Cut(strings.TrimPrefix(f[1], "chaos_"), "_")
		pid, err := strconv.Atoi(pidText)
		if err == nil && syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = exec.Command("pg_dropcluster", "--stop", version, f[1]).Run()
	}
}

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

func (c *cluster) waitReady(limit time.Duration) error {
	return c.waitUntil(limit, func(*pgx.Conn) error { return nil })
}

// waitUntil connects to c until ok passes on a connection, or limit passes.
func (c *cluster) waitUntil(limit time.Duration, ok func(*pgx.Conn) error) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		if err == nil {
			err = ok(conn)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s: %w", c.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dropDatabase drops db if an earlier run (go test -count N) left it.
func (c *cluster) dropDatabase(db string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
	return err
}

// restart restarts Postgres: mode "fast" (clean) or "immediate" (a crash).
func (c *cluster) restart(mode string) error {
	out, err := exec.Command("pg_ctlcluster", c.version, c.name, "restart", "-m", mode).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctlcluster restart -m %s: %v\n%s", mode, err, out)
	}
	return c.waitReady(60 * time.Second)
}

// crash SIGKILLs the server and every process it started, as a machine
// that dies would: stopped first, so that it forks nothing meanwhile.
func (c *cluster) crash() error {
	data, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return fmt.Errorf("postmaster.pid: %w", err)
	}
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		return err
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after ")".
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pm) {
			pid, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSuffix(f, "/stat"), "/proc/"))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return syscall.Kill(pm, syscall.SIGKILL)
}

// promote makes a standby the primary and waits until it takes writes.
func (c *cluster) promote() error {
	if out, err := exec.Command("pg_ctlcluster", c.version, c.name, "promote").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctlcluster promote: %v\n%s", err, out)
	}
	return c.waitUntil(30*time.Second, func(conn *pgx.Conn) error {
		var recovering bool
		if err := conn.QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&recovering); err != nil {
			return err
		}
		if recovering {
			return errors.New("still a standby after promote")
		}
		return nil
	})
}

func (c *cluster) drop() {
	_ = exec.Command("pg_dropcluster", "--stop", c.version, c.name).Run()
}
