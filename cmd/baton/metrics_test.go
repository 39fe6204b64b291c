package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// startMetricsWorker starts `baton worker` with its metrics server on a free
// loopback port, with at most nofile file descriptors (0: as inherited), and
// waits until it is ready.
func startMetricsWorker(t *testing.T, databaseURL, config string, nofile int) (*workerProc, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	args := []string{batonBin, "worker", "--config", config, "--metrics-addr", addr}
	if nofile > 0 { // the shell's ulimit sets both limits: Go raises the soft one to the hard one
		args = append([]string{"sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile)}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
	w := startProc(t, cmd)
	require.Eventually(t, func() bool { code, _ := probe(addr, "/readyz"); return code == http.StatusOK },
		20*time.Second, 10*time.Millisecond, w.stderr.String())
	return w, addr
}

// probe GETs path from addr: its status (0 when it did not answer) and body.
func probe(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// 300 connections to a worker's metrics port that declare a body and never
// send it leave its jobs unharmed. Before, the server kept every one (only
// ReadHeaderTimeout was set): with a limit of 160 descriptors they took
// them all, and every exec handler failed with "pipe2: too many open files"
// until its job was dead.
func TestSlowConnectionsToTheMetricsPortLeaveJobsUnharmed(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	config := writeFile(t, "cat.yaml", "poll_interval: 50ms\nstages:\n  - queue: a\n    handler: {exec: [cat]}\n    concurrency: 2\n    max_attempts: 1\n")
	w, addr := startMetricsWorker(t, u, config, 160)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 300 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"))
		require.NoError(t, err)
		conns = append(conns, c)
	}
	for i := range 20 {
		require.Zero(t, baton(t, u, "", "submit", "a", fmt.Sprintf(`{"n": %d}`, i)).code)
	}
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'") == 20
	}, 30*time.Second, 20*time.Millisecond, w.stderr.String())
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.job_events WHERE error IS NOT NULL"), w.stderr.String())
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	require.Zero(t, w.wait(t), w.stderr.String())
}

// A worker's /readyz says that the database does not answer, and no more:
// before, it named the database's user, name and host to anyone who
// reached the port.
func TestWorkerReadinessNamesNoDatabase(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	config := writeFile(t, "cat.yaml", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n")
	w, addr := startMetricsWorker(t, u, config, 0)
	name := pool.Config().ConnConfig.Database
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, strings.Replace(u, "/"+name+"?", "/postgres?", 1))
	require.NoError(t, err)
	defer admin.Close(ctx)
	allow := func(b bool) {
		_, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", pgx.Identifier{name}.Sanitize(), b))
		require.NoError(t, err)
	}
	allow(false)
	defer allow(true)
	_, err = admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'baton-worker%'", name)
	require.NoError(t, err)
	var body string
	require.Eventually(t, func() bool {
		var code int
		code, body = probe(addr, "/readyz")
		return code == http.StatusServiceUnavailable
	}, 20*time.Second, 20*time.Millisecond, w.stderr.String())
	require.Equal(t, "the database does not answer\n", body)
	require.NotContains(t, body, name)
	allow(true)
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	require.Zero(t, w.wait(t), w.stderr.String())
}

func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "0.0.0.0:1": false, "[::]:1": false, "10.1.2.3:1": false} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		require.NoError(t, err)
		require.Equal(t, want, loopback(a), addr)
	}
}
