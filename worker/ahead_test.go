package worker_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

// submitPaused puts n jobs with payload into queue "a", paused, so that the
// worker meets them as one backlog when the test resumes it.
func (b *bundle) submitPaused(n int, payload string) {
	b.t.Helper()
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `INSERT INTO baton.queues (name, paused) VALUES ('a', true) ON CONFLICT (name) DO UPDATE SET paused = true`)
	require.NoError(b.t, err)
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: "a", Payload: json.RawMessage(payload)}
	}
	_, err = store.Submit(ctx, b.pool, jobs...)
	require.NoError(b.t, err)
}

func (b *bundle) resume() {
	b.t.Helper()
	_, err := store.New(b.pool).QueuePause(context.Background(), store.QueuePauseParams{Name: "a", Paused: false})
	require.NoError(b.t, err)
}

// While a backlog waits, a stage claims jobs ahead of its free slots, and
// they start as slots free: never more handlers run than its concurrency,
// and every job runs once.
func TestJobsClaimedAheadWaitForASlot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var running, most atomic.Int32
	h := b.handle(worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(2 * time.Millisecond) // the handler's work
		return nil, nil
	}))
	b.submitPaused(600, `{}`)
	reg := prometheus.NewRegistry()
	workertest.Start(t, b.pool, `
stages:
  - {queue: a, handler: {go: `+h+`}, concurrency: 4}
`, worker.Config{ID: "ahead", Handlers: b.handlers, Metrics: reg})
	b.resume()
	require.Eventually(t, func() bool {
		return count(t, b.pool, `SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'`) == 600
	}, 30*time.Second, 10*time.Millisecond)

	require.LessOrEqual(t, most.Load(), int32(4), "handlers at once")
	require.Greater(t, counter(t, reg, "baton_jobs_claimed_ahead_total"), 0.0, "jobs claimed ahead of a free slot")
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM baton.jobs WHERE attempts <> 1`), "every job ran once")
}

// counter is the value of a worker's counter of one queue, 0 if it has none.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// At shutdown the jobs claimed ahead that never started are given back at
// once, their attempt not counted, while the handlers running finish:
// another replica need not wait for their leases, nor for the drain.
func TestShutdownGivesBackJobsClaimedAhead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	release := make(chan struct{})
	var blocked atomic.Int32
	h := b.handle(worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		var p struct{ Block bool }
		if err := json.Unmarshal(j.Payload, &p); err != nil || !p.Block {
			return nil, err
		}
		blocked.Add(1)
		select {
		case <-release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	b.submitPaused(40, `{"block": false}`) // quick: the stage learns its handler's pace
	b.submitPaused(40, `{"block": true}`)
	r := b.start(`
stages:
  - {queue: a, handler: {go: ` + h + `}, concurrency: 4}
`)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the worker's stop, should the test fail
	b.resume()
	running := func() int { return count(t, b.pool, `SELECT count(*) FROM baton.jobs WHERE state = 'running'`) }
	require.Eventually(t, func() bool {
		return blocked.Load() == 4 && running() == 40 &&
			count(t, b.pool, `SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'`) == 40
	}, 20*time.Second, 5*time.Millisecond, "four handlers run and the other 36 jobs wait for a slot")

	r.Cancel()
	require.Eventually(t, func() bool { return running() == 4 }, 5*time.Second, 5*time.Millisecond,
		"the jobs waiting are given back while the handlers still run")
	require.Equal(t, int32(4), blocked.Load())
	require.Equal(t, 36, count(t, b.pool, `SELECT count(*) FROM baton.job_events WHERE error = 'released on worker shutdown'`))
	require.Equal(t, 36, count(t, b.pool, `SELECT count(*) FROM baton.jobs WHERE state = 'available' AND attempts = 0`))

	unblock()
	r.Stop(t)
	require.Equal(t, int32(4), blocked.Load(), "no job started once shutdown began")
	require.Equal(t, 44, count(t, b.pool, `SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'`))
	require.Zero(t, running())
}
