package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

// replicas runs n workers of the pipeline, each on a pool of its own (as
// replicas on other machines would be), with handler h.
func replicas(t *testing.T, url string, n int, pipeline string, h worker.Handler) {
	for i := range n {
		pool, err := store.Connect(context.Background(), store.ConnectConfig{URL: url, MaxConns: 16})
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		r := workertest.Start(t, pool, pipeline, worker.Config{ID: fmt.Sprintf("r%d", i), Handlers: worker.Handlers{"h": h}})
		t.Cleanup(func() { r.Stop(t) }) // before the pool closes
	}
}

// submitN submits n jobs to queue.
func submitN(t *testing.T, pool *pgxpool.Pool, queue string, n int) {
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: queue}
	}
	_, err := store.Submit(context.Background(), pool, jobs...)
	require.NoError(t, err)
}

// limitProbe runs the jobs and watches how many run at once: in the
// handlers (over every replica), and in the database, sampled every 10 ms.
type limitProbe struct {
	inHandlers, maxInHandlers, maxRunning atomic.Int64
}

func (p *limitProbe) handler(d time.Duration) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		n := p.inHandlers.Add(1)
		defer p.inHandlers.Add(-1)
		for m := p.maxInHandlers.Load(); n > m && !p.maxInHandlers.CompareAndSwap(m, n); m = p.maxInHandlers.Load() {
		}
		time.Sleep(d)
		return nil, nil
	})
}

// sample records the most jobs of queue running at once until ctx ends.
func (p *limitProbe) sample(ctx context.Context, t *testing.T, pool *pgxpool.Pool, queue string) {
	for ctx.Err() == nil {
		var n int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM baton.jobs WHERE queue = $1 AND state = 'running'", queue).Scan(&n); err == nil && n > p.maxRunning.Load() {
			p.maxRunning.Store(n)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// With global_concurrency: 5 and three replicas of 10 slots each, at no
// moment do more than 5 of the queue's jobs run, and the queue drains.
func TestGlobalConcurrencyHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	ctx := context.Background()
	submitN(t, pool, "a", 300)

	var p limitProbe
	sctx, stop := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { defer close(sampled); p.sample(sctx, t, pool, "a") }()
	replicas(t, url, 3, "poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: h}\n    concurrency: 10\n    global_concurrency: 5\n", p.handler(20*time.Millisecond))
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'a' AND state = 'succeeded'") == 300
	}, time.Minute, 20*time.Millisecond, "the queue drains")
	stop()
	<-sampled
	t.Logf("most running at once: %d in handlers, %d sampled in the database", p.maxInHandlers.Load(), p.maxRunning.Load())
	require.EqualValues(t, 5, p.maxInHandlers.Load(), "the limit is used, and never exceeded")
	require.LessOrEqual(t, p.maxRunning.Load(), int64(5))
}

// A queue's own limit, set at run time, wins over its stages' (here none):
// replicas with no limit in their file keep to it.
func TestAQueuesOwnLimitWinsOverTheFiles(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	ctx := context.Background()
	two := int32(2)
	_, err := store.New(pool).QueueSet(ctx, store.QueueSetParams{Name: "a", GlobalConcurrency: &two, SetGlobalConcurrency: true})
	require.NoError(t, err)
	submitN(t, pool, "a", 100)

	var p limitProbe
	replicas(t, url, 3, "poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: h}\n    concurrency: 10\n    global_concurrency: 50\n", p.handler(10*time.Millisecond))
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'a' AND state = 'succeeded'") == 100
	}, time.Minute, 20*time.Millisecond)
	require.EqualValues(t, 2, p.maxInHandlers.Load())
}

// A replica that died holding the limit's slots (its claims never end)
// gives them back when the reaper returns its leases: the queue drains.
func TestADeadReplicasSlotsComeBackWhenItsLeasesAreReaped(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	ctx := context.Background()
	submitN(t, pool, "a", 10)
	dead, err := store.New(pool).JobClaim(ctx, store.JobClaimParams{QueueName: "a", MaxJobs: 5, GlobalConcurrency: 5, LeaseMs: 300, WorkerID: "dead",
		MaxAttempts: 5, MaxJobLeaseMs: 300})
	require.NoError(t, err)
	require.Len(t, dead, 5, "the dead replica holds every slot")

	var p limitProbe
	replicas(t, url, 1, "poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: h}\n    concurrency: 10\n    global_concurrency: 5\n", p.handler(0))
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'a' AND state = 'succeeded'") == 10
	}, time.Minute, 20*time.Millisecond, "the queue drains once the dead replica's leases are reaped")
	require.LessOrEqual(t, p.maxInHandlers.Load(), int64(5))
}
