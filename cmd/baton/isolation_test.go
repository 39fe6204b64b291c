package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// supervise runs `baton worker` and starts it again whenever it exits, as
// systemd or Kubernetes would, until the test ends. It returns how many
// times the worker was started.
func supervise(t *testing.T, databaseURL, config, id string) *atomic.Int64 {
	t.Helper()
	var starts atomic.Int64
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cmd := exec.Command(batonBin, "worker", "--config", config, "--id", id)
			cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
			cmd.Stderr = logs
			if err := cmd.Start(); err != nil {
				return
			}
			starts.Add(1)
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-ctx.Done():
				_ = cmd.Process.Signal(syscall.SIGTERM)
				<-exited
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("worker %s logs:\n%s", id, logs.String())
		}
	})
	return &starts
}

// A job that kills its worker (here `kill -9 $PPID`, every time) takes no
// bystander with it. A lease lost while a job ran beside others is not
// counted: such a job runs alone on a replica next, so only the culprit
// loses leases that count. Before, with 4 such jobs among 40 (concurrency
// 4, max_attempts 3, the worker restarted by a supervisor), the 4 culprits
// and 12 of the 36 innocent jobs ended dead.
func TestAWorkerKillingJobTakesNoBystander(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	config := writeFile(t, "p.yaml", `
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "p=$(cat); case \"$p\" in *crash*) kill -9 $PPID;; esac; sleep 0.2; printf '%s' \"$p\""]}
    concurrency: 4
    lease: 1s
    max_attempts: 3
`)
	w1 := supervise(t, u, config, "w1")
	w2 := supervise(t, u, config, "w2")
	var culprits, innocents []int64
	for n := range 40 {
		payload := fmt.Sprintf(`{"n": %d}`, n)
		if n%10 == 9 {
			payload = fmt.Sprintf(`{"n": %d, "crash": true}`, n)
		}
		ids, err := store.Submit(context.Background(), pool, store.NewJob{Queue: "a", Payload: []byte(payload)})
		require.NoError(t, err)
		if n%10 == 9 {
			culprits = append(culprits, ids[0])
		} else {
			innocents = append(innocents, ids[0])
		}
	}
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state IN ('succeeded', 'dead')") == 40
	}, 3*time.Minute, 100*time.Millisecond)

	for _, id := range innocents {
		st, err := store.Status(context.Background(), pool, id)
		require.NoError(t, err)
		require.Equal(t, store.JobState("succeeded"), st.State, "innocent job %d: %+v", id, st)
	}
	for _, id := range culprits {
		st, err := store.Status(context.Background(), pool, id)
		require.NoError(t, err)
		require.Equal(t, store.JobState("dead"), st.State, "culprit %d", id)
		require.Equal(t, int32(3), st.Attempts, "culprit %d: max_attempts runs alone", id)
		require.Equal(t, int32(4), st.LostLeases, "one lost beside others, three alone")
		require.Regexp(t, `^lease expired: worker w[12] died or froze while this job ran \(4 times\)$`, *st.LastError)
		require.False(t, st.RunsAlone, "a dead job waits for nothing")
	}
	starts := w1.Load() + w2.Load()
	t.Logf("workers started %d times; lost leases: %d", starts,
		count(t, pool, "SELECT sum(lost_leases) FROM baton.jobs"))
	require.GreaterOrEqual(t, starts, int64(2+4*4), "every culprit run killed its worker")

	// baton status shows it.
	r := baton(t, u, "", "status", fmt.Sprint(culprits[0]))
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, `"lost_leases": 4`)
	require.True(t, strings.Contains(r.stdout, `"runs_alone": false`))
}
