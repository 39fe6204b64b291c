package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

func TestWorkerHandsOffThroughTwoStages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	double := b.handle(worker.Typed(func(ctx context.Context, job *worker.Job, in struct{ N int }) (map[string]int, error) {
		return map[string]int{"n": in.N * 2}, nil
	}))
	r := b.start(fmt.Sprintf(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {go: %q}
    next: b
  - queue: b
    handler: {exec: ["cat"]}
`, double))
	ids := make([]int64, 20)
	for i := range ids {
		ids[i] = b.submit(fmt.Sprintf(`{"n": %d}`, i))
	}
	for i, id := range ids {
		s := b.waitState(id, "succeeded")
		require.Len(t, s.Children, 1)
		child := b.waitState(s.Children[0], "succeeded")
		require.Equal(t, "b", child.Queue)
		require.Equal(t, id, *child.ParentID)
		require.JSONEq(t, fmt.Sprintf(`{"n": %d}`, 2*i), string(child.Payload))
		require.JSONEq(t, string(child.Payload), string(child.Result), "cat echoes its payload")
	}
	r.Stop(t)
	require.Equal(t, int64(40), r.Stats().Succeeded)
}

func TestExecHandlerSeesJobEnvironment(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(`
poll_interval: 20ms
stages:
  - queue: a
    handler:
      exec: ["sh", "-c", 'read p; printf "{\"id\": %s, \"queue\": \"%s\", \"attempt\": %s, \"in\": %s}" $BATON_JOB_ID $BATON_QUEUE $BATON_ATTEMPT "$p"']
`)
	id := b.submit(`{"x": 1}`)
	s := b.waitState(id, "succeeded")
	require.JSONEq(t, fmt.Sprintf(`{"id": %d, "queue": "a", "attempt": 1, "in": {"x": 1}}`, id), string(s.Result))
}

func TestFailingHandlerEndsDeadWithItsStderr(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "echo noise; echo disk full >&2; exit 3"]}
    max_attempts: 3
    backoff: 10ms
    max_backoff: 40ms
`)
	id := b.submit(`{}`)
	s := b.waitState(id, "dead")
	require.Equal(t, int32(3), s.Attempts)
	require.Contains(t, *s.LastError, "exit status 3")
	require.Contains(t, *s.LastError, "disk full")
	var path []string
	for _, e := range s.History {
		if e.To != "available" { // promotion may or may not beat the claim to a due job
			path = append(path, string(e.To))
		}
	}
	require.Equal(t, "running retrying running retrying running dead", strings.Join(path, " "))
}

func TestHandlerOutputMustBeJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["echo", "not json"]}
    max_attempts: 1
`)
	s := b.waitState(b.submit(`{}`), "dead")
	require.Contains(t, *s.LastError, "stdout is not valid JSON")
}

func TestPermanentErrorsSkipRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := b.handle(worker.HandlerFunc(func(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
		return nil, worker.Permanent(errors.New("no such customer"))
	}))
	b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    max_attempts: 9\n", name))
	s := b.waitState(b.submit(`{}`), "dead")
	require.Equal(t, int32(1), s.Attempts)
	require.Equal(t, "no such customer", *s.LastError)
}

func TestPanickingHandlerFailsTheAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := b.handle(worker.HandlerFunc(func(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
		panic("nil map")
	}))
	b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    max_attempts: 1\n", name))
	s := b.waitState(b.submit(`{}`), "dead")
	require.Contains(t, *s.LastError, "handler panicked: nil map")
}

func TestTimeoutStopsTheHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "sleep 60 & wait"]}
    timeout: 200ms
    max_attempts: 1
`)
	s := b.waitState(b.submit(`{}`), "dead")
	require.Contains(t, *s.LastError, "timeout: handler ran longer than 200ms")
}

// A Go handler's context carries its timeout as a deadline, and ends with
// context.DeadlineExceeded at it, the timeout as its cause, in what the
// handler derives from it too.
func TestAGoHandlersContextEndsAtItsTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	type seen struct {
		left       time.Duration
		hasDL      bool
		err, cause error
		childCause error
	}
	seenc := make(chan seen, 1)
	name := b.handle(worker.HandlerFunc(func(ctx context.Context, _ *worker.Job) (json.RawMessage, error) {
		dl, ok := ctx.Deadline()
		child, cancel := context.WithCancel(ctx)
		defer cancel()
		<-child.Done()
		seenc <- seen{left: time.Until(dl), hasDL: ok, err: ctx.Err(), cause: context.Cause(ctx), childCause: context.Cause(child)}
		return nil, ctx.Err()
	}))
	b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    timeout: 300ms\n    max_attempts: 1\n", name))
	s := b.waitState(b.submit(`{}`), "dead")
	require.Equal(t, "timeout: handler ran longer than 300ms", *s.LastError)
	got := <-seenc
	require.True(t, got.hasDL, "the handler's context has a deadline")
	require.LessOrEqual(t, got.left, time.Duration(0), "it ended no sooner than its deadline")
	require.ErrorIs(t, got.err, context.DeadlineExceeded)
	require.EqualError(t, got.cause, "timeout: handler ran longer than 300ms")
	require.Equal(t, got.cause, got.childCause, "a derived context has the same cause")
}

func TestHTTPHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	keys := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys <- r.Header.Get("Idempotency-Key")
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "fail") {
			http.Error(w, "upstream says no", http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, `{"echo": %s, "auth": %q}`, body, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	b.start(fmt.Sprintf(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {http: {url: %q, headers: {Authorization: "Bearer s3cret"}}}
    max_attempts: 1
`, srv.URL))
	ok := b.submit(`{"v": 1}`)
	s := b.waitState(ok, "succeeded")
	require.JSONEq(t, `{"echo": {"v": 1}, "auth": "Bearer s3cret"}`, string(s.Result))
	require.Equal(t, fmt.Sprint(ok), <-keys)

	bad := b.submit(`{"fail": true}`)
	s = b.waitState(bad, "dead")
	require.Contains(t, *s.LastError, "502 Bad Gateway")
	require.Contains(t, *s.LastError, "upstream says no")
}

// gate is a Go handler that reports each start and blocks until released or
// until its context ends.
type gate struct {
	started  chan int64
	release  chan struct{}
	stopped  chan error
	attempts chan int
}

func newGate(b *bundle) (string, *gate) {
	g := &gate{started: make(chan int64, 10), release: make(chan struct{}), stopped: make(chan error, 10), attempts: make(chan int, 10)}
	name := b.handle(worker.HandlerFunc(func(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
		g.attempts <- job.Attempt
		g.started <- job.ID
		select {
		case <-g.release:
			return json.RawMessage(`{"done": true}`), nil
		case <-ctx.Done():
			g.stopped <- context.Cause(ctx)
			return nil, ctx.Err()
		}
	}))
	return name, g
}

func TestGracefulShutdownLetsHandlersFinish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	name, g := newGate(b)
	// One slot: the second job waits for it, and the slot frees only after
	// shutdown began, when a draining worker must claim nothing new.
	r := b.start(fmt.Sprintf("poll_interval: 20ms\nshutdown_grace: 1m\nstages:\n  - queue: a\n    handler: {go: %q}\n    concurrency: 1\n", name))
	id := b.submit(`{}`)
	<-g.started
	later := b.submit(`{}`)
	r.Cancel()
	select {
	case <-r.Done():
		t.Fatal("Run returned while a handler was still running")
	default:
	}
	close(g.release)
	r.Stop(t)
	s := b.waitState(id, "succeeded")
	require.Equal(t, int32(1), s.Attempts)
	s, err := store.Status(context.Background(), pool, later)
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateAvailable, s.State)
}

func TestShutdownGraceReleasesUnfinishedJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	name, g := newGate(b)
	r := b.start(fmt.Sprintf("poll_interval: 20ms\nshutdown_grace: 50ms\nstages:\n  - queue: a\n    handler: {go: %q}\n", name))
	id := b.submit(`{}`)
	<-g.started
	r.Stop(t)
	require.Error(t, <-g.stopped, "the handler's context is cancelled")
	s, err := store.Status(context.Background(), pool, id)
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateAvailable, s.State)
	require.Zero(t, s.Attempts, "a released attempt is not counted")
	require.Equal(t, "released on worker shutdown", *s.History[len(s.History)-1].Error)
	require.Equal(t, int64(1), r.Stats().Released)
	require.Zero(t, r.Stats().LeasesLost)
}

func TestHeartbeatsKeepTheLeaseOfLongHandlers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	ctx := context.Background()
	name, g := newGate(b)
	// A lease of 1 s, heartbeats every third of it: a shorter one was lost
	// now and then under CI's load, when one heartbeat came late.
	r := b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 1s\n", name))
	id := b.submit(`{}`)
	<-g.started
	var first time.Time
	require.NoError(t, pool.QueryRow(ctx, "SELECT lease_expires_at FROM baton.jobs WHERE id = $1", id).Scan(&first))
	// Wait until a heartbeat has pushed the lease past its first deadline...
	require.Eventually(t, func() bool {
		var passed bool
		require.NoError(t, pool.QueryRow(ctx, "SELECT now() > $2 AND lease_expires_at > $2 FROM baton.jobs WHERE id = $1", id, first).Scan(&passed))
		return passed
	}, 10*time.Second, 10*time.Millisecond)
	// ...so the reaper, run now, leaves the job alone.
	require.Zero(t, maintenance.Pass(ctx, pool, slog.Default()))
	close(g.release)
	s := b.waitState(id, "succeeded")
	require.Equal(t, int32(1), s.Attempts)
	r.Stop(t)
	require.Zero(t, r.Stats().LeasesLost)
}

func TestCancelStopsARunningHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	name, g := newGate(b)
	r := b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 300ms\n", name))
	id := b.submit(`{}`)
	<-g.started
	require.NoError(t, store.Cancel(context.Background(), pool, id))
	require.ErrorIs(t, <-g.stopped, store.ErrLeaseLost, "the next heartbeat cancels the handler")
	r.Stop(t)
	s, err := store.Status(context.Background(), pool, id)
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateCanceled, s.State)
	require.Equal(t, int64(1), r.Stats().LeasesLost)
}

func TestExpiredLeaseIsReclaimedAndTheZombieIsFenced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	ctx := context.Background()
	name, g := newGate(b)
	// A lease long enough that no heartbeat runs during the test.
	r := b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 1h\n    concurrency: 2\n", name))
	id := b.submit(`{}`)
	<-g.started
	_, err := pool.Exec(ctx, "UPDATE baton.jobs SET lease_expires_at = now() - interval '1s' WHERE id = $1", id)
	require.NoError(t, err)
	require.Equal(t, id, <-g.started, "the reaper returned the job and the worker claimed it again")
	require.Equal(t, 1, <-g.attempts)
	require.Equal(t, 1, <-g.attempts, "a lease lost beside other jobs is not counted")
	close(g.release) // both runs finish; only the second may commit
	s := b.waitState(id, "succeeded")
	require.Equal(t, int32(1), s.Attempts)
	require.Eventually(t, func() bool { return r.Stats().LeasesLost == 1 }, 10*time.Second, 10*time.Millisecond)
	var succeeded int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM baton.job_history WHERE job_id = $1 AND to_state = 'succeeded'", id).Scan(&succeeded))
	require.Equal(t, 1, succeeded)
}

// When this worker claims a job again (its lease expired while the worker
// was frozen, say), the earlier run is stopped at once, and the new claim
// keeps its place: its lease is still heartbeated, and released at
// shutdown. Before, the new claim replaced the earlier run's entry without
// stopping it, and the earlier run's end then deleted the new claim's entry.
func TestAReclaimedJobStopsItsEarlierRunAndKeepsItsLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	ctx := context.Background()
	name, g := newGate(b)
	r := b.start(fmt.Sprintf("poll_interval: 20ms\nshutdown_grace: 50ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 1h\n    concurrency: 2\n", name))
	id := b.submit(`{}`)
	<-g.started
	_, err := pool.Exec(ctx, "UPDATE baton.jobs SET lease_expires_at = now() - interval '1s' WHERE id = $1", id)
	require.NoError(t, err)
	require.Equal(t, id, <-g.started, "the reaper returned the job and the worker claimed it again")
	select {
	case cause := <-g.stopped:
		require.ErrorIs(t, cause, store.ErrLeaseLost, "the earlier run is stopped as lost")
	case <-time.After(10 * time.Second):
		t.Fatal("the earlier run was not stopped when its job was claimed again")
	}
	r.Stop(t) // grace runs out: the running claim's lease is released
	s := b.waitState(id, "available")
	require.Equal(t, int32(0), s.Attempts, "neither the lost attempt nor the released one is counted")
}

func TestUnknownGoHandlerIsAnError(t *testing.T) {
	t.Parallel()
	p, err := worker.ParsePipeline([]byte("stages:\n  - queue: a\n    handler: {go: nobody-registered-this}\n"))
	require.NoError(t, err)
	_, err = worker.New(nil, worker.Config{Pipeline: p})
	require.ErrorIs(t, err, worker.ErrPipeline)
	require.ErrorContains(t, err, "nobody-registered-this")
}

func TestNotifyWakesAnIdleStage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	b.start("poll_interval: 1h\nstages:\n  - queue: a\n    handler: {exec: [cat]}\n")
	// Once the worker listens, only the wake-up hint can start a new job
	// within the test's time: the next poll is an hour away.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%LISTEN baton_jobs%'").Scan(&n))
		return n == 1
	}, 10*time.Second, 10*time.Millisecond)
	b.waitState(b.submit(`{"hint": true}`), "succeeded")
}

// When the replica that completes a job also works the next stage and has a
// free slot there, the hand-off creates the next job already claimed by it
// (one commit instead of two); a paused next queue is never claimed so.
func TestDirectHandOffClaimsTheNextJobInTheSameCommit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	ctx := context.Background()
	b.start(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["cat"]}
    next: b
  - queue: b
    handler: {exec: ["cat"]}
    max_attempts: 7
`)
	// At a trickle, b is caught up: its jobs are claimed as they are created.
	for n := range 5 {
		id := b.submit(fmt.Sprintf(`{"n": %d}`, n))
		s := b.waitState(id, "succeeded")
		child := b.waitState(s.Children[0], "succeeded")
		require.Equal(t, int32(7), *child.MaxAttempts)
		var states []string
		for _, e := range child.History {
			states = append(states, string(e.To))
		}
		require.Equal(t, []string{"available", "running", "succeeded"}, states)
		require.Equal(t, "test-worker", *child.History[1].Worker)
	}
	var direct int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FROM baton.jobs b
		JOIN baton.job_history claim ON claim.job_id = b.id AND claim.to_state = 'running'
		WHERE b.queue = 'b' AND claim.at = b.created_at AND claim.lease_token = 1`).Scan(&direct))
	require.Positive(t, direct, "at least one hand-off was claimed in its own commit")

	// Paused, b takes nothing, directly or otherwise; resumed, it runs.
	_, err := store.New(pool).QueuePause(ctx, store.QueuePauseParams{Name: "b", Paused: true})
	require.NoError(t, err)
	id := b.submit(`{"n": 99}`)
	// The hand-off's commit decided: with b paused, its job was created unclaimed.
	s := b.waitState(id, "succeeded")
	child, err := store.Status(ctx, pool, s.Children[0])
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateAvailable, child.State)
	_, err = store.New(pool).QueuePause(ctx, store.QueuePauseParams{Name: "b", Paused: false})
	require.NoError(t, err)
	b.waitState(s.Children[0], "succeeded")
}

// Two Workers in one process keep their own metrics, each in the registry
// it was given; a registry refuses a second Worker's.
func TestTwoWorkersKeepTheirOwnMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pipeline := "stages:\n  - {queue: a, handler: {go: " + b.handle(echo) + "}}\n"
	p, err := worker.ParsePipeline([]byte(pipeline))
	require.NoError(t, err)
	one, two := prometheus.NewRegistry(), prometheus.NewRegistry()
	workertest.Start(t, b.pool, pipeline, worker.Config{ID: "one", Handlers: b.handlers, Metrics: one})
	_, err = worker.New(b.pool, worker.Config{Pipeline: p, Handlers: b.handlers, Metrics: one})
	require.ErrorContains(t, err, "give each Worker a registry of its own")
	workertest.Start(t, b.pool, pipeline, worker.Config{ID: "two", Handlers: b.handlers, Metrics: two})
	for range 3 {
		b.submit(`{}`)
	}
	require.Eventually(t, func() bool {
		return count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'") == 3
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 3.0, counter(t, one, "baton_jobs_claimed_total")+counter(t, two, "baton_jobs_claimed_total"), "each claim counted once, by the worker that made it")
}

// A worker is ready while its stages claim: not before Run starts them,
// and not once it drains for shutdown.
func TestReadyWhileWorking(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	pipeline := "stages:\n  - {queue: a, handler: {go: " + b.handle(echo) + "}}\n"
	p, err := worker.ParsePipeline([]byte(pipeline))
	require.NoError(t, err)
	idle, err := worker.New(b.pool, worker.Config{Pipeline: p, Handlers: b.handlers})
	require.NoError(t, err)
	require.ErrorContains(t, idle.Ready(ctx), "not working")
	r := b.start(pipeline)
	require.Eventually(t, func() bool { return r.Ready(ctx) == nil }, 10*time.Second, 5*time.Millisecond)
	r.Stop(t)
	require.ErrorContains(t, r.Ready(ctx), "not working")
}

// A job handed off already claimed sees its payload as the database keeps
// it, the same bytes a job claimed from its queue sees (jsonb's form), not
// the bytes the previous handler printed.
func TestADirectHandOffsPayloadIsTheStoredOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seen := make(chan string, 10)
	printed := b.handle(worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) {
		return json.RawMessage(`{ "b" : 1,"a":[ 2 ,3]}`), nil
	}))
	record := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		seen <- string(j.Payload)
		return nil, nil
	}))
	b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - {queue: a, handler: {go: %s}, next: b}\n  - {queue: b, handler: {go: %s}}\n", printed, record))
	for range 10 { // at a trickle b is caught up, and takes hand-offs directly (the first may be early)
		s := b.waitState(b.submit(`{}`), "succeeded")
		child := b.waitState(s.Children[0], "succeeded")
		got := <-seen
		if !child.CreatedAt.Equal(*child.StartedAt) {
			continue // claimed from the queue, not handed off claimed
		}
		var stored string
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT payload::text FROM baton.jobs WHERE id = $1", child.ID).Scan(&stored))
		require.Equal(t, `{"a": [2, 3], "b": 1}`, stored)
		require.Equal(t, stored, got)
		return
	}
	t.Fatal("no job was handed off already claimed")
}
