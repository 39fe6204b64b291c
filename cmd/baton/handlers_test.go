package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/store"
)

// handlerPIDs reads the pids handlers wrote to path, one per line.
func handlerPIDs(t *testing.T, path string) []int {
	t.Helper()
	b, _ := os.ReadFile(path)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	return pids
}

// gone reports whether a process has ended (a zombie has ended too).
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	state := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(state) == 0 || state[0] == "Z" || state[0] == "X"
}

// killOnCleanup stops the handler processes of a test that failed half-way.
func killOnCleanup(t *testing.T, path string) {
	t.Cleanup(func() {
		for _, pid := range handlerPIDs(t, path) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

func submitTo(t *testing.T, pool *pgxpool.Pool, queue string, n int) {
	t.Helper()
	for range n {
		_, err := store.Submit(context.Background(), pool, store.NewJob{Queue: queue})
		require.NoError(t, err)
	}
}

// When a worker is SIGKILLed, its exec handlers die within a second,
// grandchildren started by their shell included. Before, they ran on: a
// `sleep` finished after another replica had started the job's next attempt.
func TestHandlersDieWithTheirWorker(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	pids := filepath.Join(t.TempDir(), "pids")
	killOnCleanup(t, pids)
	config := writeFile(t, "p.yaml", `
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "echo $$ >> \"$PIDS\"; sleep 600 & echo $! >> \"$PIDS\"; wait"]}
    concurrency: 2
    env: {PIDS: `+pids+`}
`)
	w := startWorker(t, u, config, "doomed")
	submitTo(t, pool, "a", 2)
	require.Eventually(t, func() bool { return len(handlerPIDs(t, pids)) == 4 }, 20*time.Second, 10*time.Millisecond,
		"two shells and their two sleeps")
	for _, pid := range handlerPIDs(t, pids) {
		require.False(t, gone(pid))
	}

	require.NoError(t, w.cmd.Process.Signal(syscall.SIGKILL))
	w.wait(t)
	requireGoneWithinASecond(t, pids, "every handler process is gone within a second of its worker")
}

// requireGoneWithinASecond fails the test unless every process listed in
// path has ended within a second.
func requireGoneWithinASecond(t *testing.T, path string, msg string, args ...any) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, pid := range handlerPIDs(t, path) {
			if !gone(pid) {
				return false
			}
		}
		return true
	}, time.Second, 10*time.Millisecond, append([]any{msg}, args...)...)
}

// A worker frozen (SIGSTOP) past its lease comes back (SIGCONT) to find the
// job taken back by the reaper: it stops the handler at once, rather than
// let it run beside the job's next attempt.
func TestAResumedWorkerStopsTheHandlerOfALostLease(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	pids := filepath.Join(t.TempDir(), "pids")
	killOnCleanup(t, pids)
	config := writeFile(t, "p.yaml", `
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "echo $$ >> \"$PIDS\"; exec sleep 600"]}
    lease: 1s
    env: {PIDS: `+pids+`}
`)
	w := startWorker(t, u, config, "frozen")
	submitTo(t, pool, "a", 1)
	require.Eventually(t, func() bool { return len(handlerPIDs(t, pids)) == 1 }, 20*time.Second, 10*time.Millisecond)
	handler := handlerPIDs(t, pids)[0]

	require.NoError(t, w.cmd.Process.Signal(syscall.SIGSTOP))
	// The lease expires while the worker is frozen, and a reaper (here the
	// test's) takes the job back.
	ctx := context.Background()
	require.Eventually(t, func() bool {
		maintenance.Pass(ctx, pool, slog.New(slog.DiscardHandler))
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'running'") == 0
	}, 20*time.Second, 50*time.Millisecond)
	require.False(t, gone(handler), "frozen, the worker has stopped nothing yet")

	require.NoError(t, w.cmd.Process.Signal(syscall.SIGCONT))
	require.Eventually(t, func() bool { return gone(handler) }, time.Second, 10*time.Millisecond,
		"the resumed worker stops the handler of the lease it lost at once")
	require.Eventually(t, func() bool { return strings.Contains(w.stderr.String(), "handler stopped: lease lost") },
		5*time.Second, 10*time.Millisecond)
}

// A worker killed while its handlers are starting leaves none of them, nor
// anything they started, behind. A command started but not yet listed with
// the guard could fork children that outlived it (the kernel's parent-death
// signal reaches the command only); now a command runs only once listed.
// Each of five rounds kills the worker as soon as the first of its 40
// handlers' children has started, while the others are starting.
func TestHandlersStartingAsTheWorkerDiesDieToo(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	pids := filepath.Join(t.TempDir(), "pids")
	killOnCleanup(t, pids)
	config := writeFile(t, "p.yaml", `
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "sleep 600 & echo $! >> \"$PIDS\"; wait"]}
    concurrency: 40
    lease: 1s
    env: {PIDS: `+pids+`}
`)
	for round := range 5 {
		submitTo(t, pool, "a", 40)
		w := startWorker(t, u, config, fmt.Sprintf("doomed-%d", round))
		if !assert.Eventually(t, func() bool { return len(handlerPIDs(t, pids)) > 40*round }, 20*time.Second, time.Millisecond) {
			t.Fatalf("round %d: no handler started in 20 s; the worker said:\n%s", round, w.stderr)
		}
		require.NoError(t, w.cmd.Process.Signal(syscall.SIGKILL)) // as the first handler's child starts
		w.wait(t)
		requireGoneWithinASecond(t, pids, "round %d: every handler's child is gone within a second of its worker", round)
		_, err := pool.Exec(context.Background(), "DELETE FROM baton.jobs")
		require.NoError(t, err)
	}
}
