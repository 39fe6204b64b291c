//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
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

func newCluster() (*cluster, error) {
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		return nil, fmt.Errorf("pg_createcluster not found (Debian's postgresql-common): %w", err)
	}
	version, err := pgVersion()
	if err != nil {
		return nil, err
	}
	dropStaleClusters(version)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := &cluster{version: version, name: fmt.Sprintf("chaos_%d", os.Getpid()), port: port}
	out, err := exec.Command("pg_createcluster", version, c.name, "-p", strconv.Itoa(port), "--start",
		"-o", "fsync=on", "-o", "synchronous_commit=on", "-o", "max_connections=300",
		"--", "-A", "trust").CombinedOutput()
	if err != nil {
		c.drop()
		return nil, fmt.Errorf("pg_createcluster: %v\n%s", err, out)
	}
	if err := c.waitReady(30 * time.Second); err != nil {
		c.drop()
		return nil, err
	}
	return c, nil
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
		pid, err := strconv.Atoi(strings.TrimPrefix(f[1], "chaos_"))
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
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s does not answer: %w", c.name, err)
		}
		time.Sleep(100 * time.Millisecond)
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

func (c *cluster) drop() {
	_ = exec.Command("pg_dropcluster", "--stop", c.version, c.name).Run()
}
