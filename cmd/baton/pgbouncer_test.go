package main

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/testenv"
)

// startPgBouncer runs Debian's PgBouncer in transaction mode on a free
// loopback port in front of the server of databaseURL, with few server
// connections so that clients share them, and returns databaseURL through
// it. It stops when the test ends.
func startPgBouncer(t *testing.T, databaseURL string) string {
	t.Helper()
	bin := testenv.LookPath(t, "the pooler test", "pgbouncer", "/usr/sbin/pgbouncer")
	target, err := url.Parse(databaseURL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	// PgBouncer will not run as root: then it runs as postgres (-u), which
	// must be able to read its files.
	dir, err := os.MkdirTemp("", "pgbouncer")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	ini := filepath.Join(dir, "pgbouncer.ini")
	users := filepath.Join(dir, "users.txt")
	require.NoError(t, os.WriteFile(users, fmt.Appendf(nil, "%q \"\"\n", target.User.Username()), 0o644))
	require.NoError(t, os.WriteFile(ini, fmt.Appendf(nil, `[databases]
* = host=%s port=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = 4
max_client_conn = 500
`, target.Hostname(), target.Port(), port, users), 0o644))
	args := []string{ini}
	if os.Geteuid() == 0 {
		args = []string{"-u", "postgres", ini}
	}
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var log strings.Builder
	var logMu sync.Mutex
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if strings.Contains(sc.Text(), "listening on 127.0.0.1:"+strconv.Itoa(port)) {
				once.Do(func() { close(listening) })
			}
		}
	}()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	select {
	case <-listening:
	case <-exited:
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("pgbouncer exited:\n%s", log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("pgbouncer did not start listening")
	}
	pooled := *target
	pooled.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return pooled.String()
}

// Through PgBouncer in transaction mode, with BATON_POOLER=transaction, the
// API and two workers move 500 jobs through two stages: every submit is a
// 201 and nothing fails. Before, 120 of 200 submits answered 500 (pgx's
// named statements met other clients' on shared server connections:
// "prepared statement stmtcache_... already exists") and `baton migrate
// version` failed too. Migrations need a direct URL, and say so.
func TestThroughPgBouncerInTransactionMode(t *testing.T) {
	t.Parallel()
	pool, direct := dbtest.NewWithURL(t)
	pooled := startPgBouncer(t, direct)
	env := []string{"BATON_POOLER=transaction"}

	r := batonWith(t, pooled, env, "", "migrate", "version")
	require.Equal(t, 2, r.code, "migrations through the pooler are refused: %s", r.stderr)
	require.Contains(t, r.stderr, "set BATON_MIGRATE_DATABASE_URL to a direct connection")
	r = batonWith(t, pooled, append(env, "BATON_MIGRATE_DATABASE_URL="+direct), "", "migrate", "up")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "version: ")

	config := writeFile(t, "p.yaml", `
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["cat"]}
    next: b
    concurrency: 8
  - queue: b
    handler: {exec: ["cat"]}
    concurrency: 8
`)
	srv := startServer(t, pooled, env, "serve")
	w1 := startWorker(t, pooled, config, "pooled-1", env...)
	w2 := startWorker(t, pooled, config, "pooled-2", env...)

	const jobs = 500
	var wg sync.WaitGroup
	codes := make(chan string, jobs)
	for c := range 10 {
		wg.Go(func() {
			for i := c; i < jobs; i += 10 {
				var code int
				var body string
				switch i % 5 {
				case 0: // with an Idempotency-Key, sent twice
					code, body = request(t, "POST", srv.base+"/v1/queues/a/jobs", "", fmt.Sprintf(`{"payload": {"n": %d}}`, i), "Idempotency-Key", fmt.Sprint("k", i))
					if code == 201 {
						code, body = request(t, "POST", srv.base+"/v1/queues/a/jobs", "", fmt.Sprintf(`{"payload": {"n": %d}}`, i), "Idempotency-Key", fmt.Sprint("k", i))
					}
				default:
					code, body = request(t, "POST", srv.base+"/v1/queues/a/jobs", "", fmt.Sprintf(`{"payload": {"n": %d}}`, i))
				}
				if code != 201 {
					codes <- fmt.Sprintf("job %d: %d %s", i, code, body)
				}
			}
		})
	}
	wg.Wait()
	close(codes)
	var failed []string
	for c := range codes {
		failed = append(failed, c)
	}
	require.Empty(t, failed, "every submit a 201")

	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'b' AND state = 'succeeded'") == jobs
	}, 60*time.Second, 50*time.Millisecond)
	require.Equal(t, 2*jobs, count(t, pool, "SELECT count(*) FROM baton.jobs"), "each job once, each hand-off once")
	require.Equal(t, 2*jobs, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'"))
	code, body := request(t, "GET", srv.base+"/v1/jobs?queue=b&limit=5", "", "")
	require.Equal(t, 200, code, body)
	code, body = request(t, "GET", srv.base+"/v1/queues", "", "")
	require.Equal(t, 200, code, body)

	for _, p := range []*workerProc{w1, w2} {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.Zero(t, p.wait(t), p.stderr.String())
		require.NotContains(t, p.stderr.String(), "level=ERROR")
		require.NotContains(t, p.stderr.String(), "level=WARN")
		require.Contains(t, p.stderr.String(), "listen=false", "workers poll through a transaction pooler")
	}
	require.NotContains(t, srv.stderr.String(), "status=5")

	// LISTEN cannot work through the pooler: asking for it is refused.
	r = batonWith(t, pooled, env, "", "worker", "--config", config, "--poll-only=false")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "LISTEN cannot work through a transaction pooler")
}

// Through PgBouncer in transaction mode without BATON_POOLER=transaction,
// serve and worker refuse to start, in one line saying what to set, and so
// does a one-shot command (db.Connect checks, for every caller). Before,
// they started, and 65 of 100 submits answered 500 (prepared statements met
// other clients' on shared server connections). Directly, the same check
// finds no pooler (every other test starts them so).
func TestAnUnannouncedTransactionPoolerIsRefused(t *testing.T) {
	t.Parallel()
	_, direct := dbtest.NewWithURL(t)
	pooled := startPgBouncer(t, direct)
	config := writeFile(t, "p.yaml", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n")
	for _, args := range [][]string{{"serve", "--addr", "127.0.0.1:0"}, {"worker", "--config", config}, {"status", "1"}} {
		r := baton(t, pooled, "", args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), "%v: one line: %s", args, r.stderr)
		require.Contains(t, r.stderr, "goes through a transaction pooler", args)
		require.Contains(t, r.stderr, "set BATON_POOLER=transaction", args)
	}
}
