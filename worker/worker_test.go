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
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/worker"
)

var registered atomic.Int64

// register registers h under a name unique to this run (tests may run with -count > 1).
func register(t *testing.T, h worker.Handler) string {
	name := fmt.Sprintf("%s#%d", t.Name(), registered.Add(1))
	worker.Register(name, h)
	return name
}

type running struct {
	w      *worker.Worker
	cancel context.CancelFunc
	done   chan error
}

// start runs a worker on the pipeline YAML until the test ends (or stop).
func start(t *testing.T, pool *pgxpool.Pool, pipeline string) *running {
	t.Helper()
	p, err := worker.ParsePipeline([]byte(pipeline))
	require.NoError(t, err)
	w, err := worker.New(pool, worker.Config{Pipeline: p, ID: "test-worker", MaintenanceInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop signals shutdown and waits for Run to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			require.NoError(t, err)
			close(r.done)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop")
	}
}

// submit puts a job into queue "a".
func submit(t *testing.T, pool *pgxpool.Pool, payload string) int64 {
	t.Helper()
	ids, err := db.Submit(context.Background(), pool, db.NewJob{Queue: "a", Payload: json.RawMessage(payload)})
	require.NoError(t, err)
	return ids[0]
}

// waitState waits until job id is in state (polling the database, since the
// state lives there), and returns its status.
func waitState(t *testing.T, pool *pgxpool.Pool, id int64, state db.JobState) *db.JobStatus {
	t.Helper()
	var s *db.JobStatus
	reached := assert.Eventually(t, func() bool {
		var err error
		s, err = db.Status(context.Background(), pool, id)
		require.NoError(t, err)
		return s.State == state
	}, 20*time.Second, 10*time.Millisecond)
	if !reached {
		// Show where it got stuck (the message arguments of Eventually are
		// evaluated before it polls).
		history, _ := json.MarshalIndent(s, "", "  ")
		t.Fatalf("job %d never reached %s; last seen:\n%s", id, state, history)
	}
	return s
}

func TestWorkerHandsOffThroughTwoStages(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	double := register(t, worker.Typed(func(ctx context.Context, job *worker.Job, in struct{ N int }) (map[string]int, error) {
		return map[string]int{"n": in.N * 2}, nil
	}))
	r := start(t, pool, fmt.Sprintf(`
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
		ids[i] = submit(t, pool, fmt.Sprintf(`{"n": %d}`, i))
	}
	for i, id := range ids {
		s := waitState(t, pool, id, "succeeded")
		require.Len(t, s.Children, 1)
		child := waitState(t, pool, s.Children[0], "succeeded")
		require.Equal(t, "b", child.Queue)
		require.Equal(t, id, *child.ParentID)
		require.JSONEq(t, fmt.Sprintf(`{"n": %d}`, 2*i), string(child.Payload))
		require.JSONEq(t, string(child.Payload), string(child.Result), "cat echoes its payload")
	}
	r.stop(t)
	require.Equal(t, int64(40), r.w.Stats().Succeeded)
}

func TestExecHandlerSeesJobEnvironment(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	start(t, pool, `
poll_interval: 20ms
stages:
  - queue: a
    handler:
      exec: ["sh", "-c", 'read p; printf "{\"id\": %s, \"queue\": \"%s\", \"attempt\": %s, \"in\": %s}" $BATON_JOB_ID $BATON_QUEUE $BATON_ATTEMPT "$p"']
`)
	id := submit(t, pool, `{"x": 1}`)
	s := waitState(t, pool, id, "succeeded")
	require.JSONEq(t, fmt.Sprintf(`{"id": %d, "queue": "a", "attempt": 1, "in": {"x": 1}}`, id), string(s.Result))
}

func TestFailingHandlerEndsDeadWithItsStderr(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	start(t, pool, `
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "echo noise; echo disk full >&2; exit 3"]}
    max_attempts: 3
    backoff: 10ms
    max_backoff: 40ms
`)
	id := submit(t, pool, `{}`)
	s := waitState(t, pool, id, "dead")
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
	pool := dbtest.New(t)
	start(t, pool, `
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["echo", "not json"]}
    max_attempts: 1
`)
	s := waitState(t, pool, submit(t, pool, `{}`), "dead")
	require.Contains(t, *s.LastError, "stdout is not valid JSON")
}

func TestPermanentErrorsSkipRetries(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	name := register(t, worker.HandlerFunc(func(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
		return nil, worker.Permanent(errors.New("no such customer"))
	}))
	start(t, pool, fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    max_attempts: 9\n", name))
	s := waitState(t, pool, submit(t, pool, `{}`), "dead")
	require.Equal(t, int32(1), s.Attempts)
	require.Equal(t, "no such customer", *s.LastError)
}

func TestPanickingHandlerFailsTheAttempt(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	name := register(t, worker.HandlerFunc(func(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
		panic("nil map")
	}))
	start(t, pool, fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    max_attempts: 1\n", name))
	s := waitState(t, pool, submit(t, pool, `{}`), "dead")
	require.Contains(t, *s.LastError, "handler panicked: nil map")
}

func TestTimeoutStopsTheHandler(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	start(t, pool, `
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "sleep 60 & wait"]}
    timeout: 200ms
    max_attempts: 1
`)
	s := waitState(t, pool, submit(t, pool, `{}`), "dead")
	require.Contains(t, *s.LastError, "timeout: handler ran longer than 200ms")
}

func TestHTTPHandler(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
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
	start(t, pool, fmt.Sprintf(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {http: {url: %q, headers: {Authorization: "Bearer s3cret"}}}
    max_attempts: 1
`, srv.URL))
	ok := submit(t, pool, `{"v": 1}`)
	s := waitState(t, pool, ok, "succeeded")
	require.JSONEq(t, `{"echo": {"v": 1}, "auth": "Bearer s3cret"}`, string(s.Result))
	require.Equal(t, fmt.Sprint(ok), <-keys)

	bad := submit(t, pool, `{"fail": true}`)
	s = waitState(t, pool, bad, "dead")
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

func newGate(t *testing.T) (string, *gate) {
	g := &gate{started: make(chan int64, 10), release: make(chan struct{}), stopped: make(chan error, 10), attempts: make(chan int, 10)}
	name := register(t, worker.HandlerFunc(func(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
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
	pool := dbtest.New(t)
	name, g := newGate(t)
	// One slot: the second job waits for it, and the slot frees only after
	// shutdown began, when a draining worker must claim nothing new.
	r := start(t, pool, fmt.Sprintf("poll_interval: 20ms\nshutdown_grace: 1m\nstages:\n  - queue: a\n    handler: {go: %q}\n    concurrency: 1\n", name))
	id := submit(t, pool, `{}`)
	<-g.started
	later := submit(t, pool, `{}`)
	r.cancel()
	select {
	case <-r.done:
		t.Fatal("Run returned while a handler was still running")
	default:
	}
	close(g.release)
	r.stop(t)
	s := waitState(t, pool, id, "succeeded")
	require.Equal(t, int32(1), s.Attempts)
	s, err := db.Status(context.Background(), pool, later)
	require.NoError(t, err)
	require.Equal(t, db.BatonJobStateAvailable, s.State)
}

func TestShutdownGraceReleasesUnfinishedJobs(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	name, g := newGate(t)
	r := start(t, pool, fmt.Sprintf("poll_interval: 20ms\nshutdown_grace: 50ms\nstages:\n  - queue: a\n    handler: {go: %q}\n", name))
	id := submit(t, pool, `{}`)
	<-g.started
	r.stop(t)
	require.Error(t, <-g.stopped, "the handler's context is cancelled")
	s, err := db.Status(context.Background(), pool, id)
	require.NoError(t, err)
	require.Equal(t, db.BatonJobStateAvailable, s.State)
	require.Zero(t, s.Attempts, "a released attempt is not counted")
	require.Equal(t, "released on worker shutdown", *s.History[len(s.History)-1].Error)
	require.Equal(t, int64(1), r.w.Stats().Released)
	require.Zero(t, r.w.Stats().LeasesLost)
}

func TestHeartbeatsKeepTheLeaseOfLongHandlers(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	name, g := newGate(t)
	r := start(t, pool, fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 300ms\n", name))
	id := submit(t, pool, `{}`)
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
	require.Zero(t, worker.Maintain(ctx, pool, slog.Default()))
	close(g.release)
	s := waitState(t, pool, id, "succeeded")
	require.Equal(t, int32(1), s.Attempts)
	r.stop(t)
	require.Zero(t, r.w.Stats().LeasesLost)
}

func TestCancelStopsARunningHandler(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	name, g := newGate(t)
	r := start(t, pool, fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 300ms\n", name))
	id := submit(t, pool, `{}`)
	<-g.started
	require.NoError(t, db.Cancel(context.Background(), pool, id))
	require.ErrorIs(t, <-g.stopped, db.ErrLeaseLost, "the next heartbeat cancels the handler")
	r.stop(t)
	s, err := db.Status(context.Background(), pool, id)
	require.NoError(t, err)
	require.Equal(t, db.BatonJobStateCanceled, s.State)
	require.Equal(t, int64(1), r.w.Stats().LeasesLost)
}

func TestExpiredLeaseIsReclaimedAndTheZombieIsFenced(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	name, g := newGate(t)
	// A lease long enough that no heartbeat runs during the test.
	r := start(t, pool, fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 1h\n    concurrency: 2\n", name))
	id := submit(t, pool, `{}`)
	<-g.started
	_, err := pool.Exec(ctx, "UPDATE baton.jobs SET lease_expires_at = now() - interval '1s' WHERE id = $1", id)
	require.NoError(t, err)
	require.Equal(t, id, <-g.started, "the reaper returned the job and the worker claimed it again")
	require.Equal(t, 1, <-g.attempts)
	require.Equal(t, 1, <-g.attempts, "a lease lost beside other jobs is not counted")
	close(g.release) // both runs finish; only the second may commit
	s := waitState(t, pool, id, "succeeded")
	require.Equal(t, int32(1), s.Attempts)
	require.Eventually(t, func() bool { return r.w.Stats().LeasesLost == 1 }, 10*time.Second, 10*time.Millisecond)
	var succeeded int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM baton.job_events WHERE job_id = $1 AND to_state = 'succeeded'", id).Scan(&succeeded))
	require.Equal(t, 1, succeeded)
}

// When this worker claims a job again (its lease expired while the worker
// was frozen, say), the earlier run is stopped at once, and the new claim
// keeps its place: its lease is still heartbeated, and released at
// shutdown. Before, the new claim replaced the earlier run's entry without
// stopping it, and the earlier run's end then deleted the new claim's entry.
func TestAReclaimedJobStopsItsEarlierRunAndKeepsItsLease(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	name, g := newGate(t)
	r := start(t, pool, fmt.Sprintf("poll_interval: 20ms\nshutdown_grace: 50ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 1h\n    concurrency: 2\n", name))
	id := submit(t, pool, `{}`)
	<-g.started
	_, err := pool.Exec(ctx, "UPDATE baton.jobs SET lease_expires_at = now() - interval '1s' WHERE id = $1", id)
	require.NoError(t, err)
	require.Equal(t, id, <-g.started, "the reaper returned the job and the worker claimed it again")
	select {
	case cause := <-g.stopped:
		require.ErrorIs(t, cause, db.ErrLeaseLost, "the earlier run is stopped as lost")
	case <-time.After(10 * time.Second):
		t.Fatal("the earlier run was not stopped when its job was claimed again")
	}
	r.stop(t) // grace runs out: the running claim's lease is released
	s := waitState(t, pool, id, "available")
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
	pool := dbtest.New(t)
	start(t, pool, "poll_interval: 1h\nstages:\n  - queue: a\n    handler: {exec: [cat]}\n")
	// Once the worker listens, only the wake-up hint can start a new job
	// within the test's time: the next poll is an hour away.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%LISTEN baton_jobs%'").Scan(&n))
		return n == 1
	}, 10*time.Second, 10*time.Millisecond)
	waitState(t, pool, submit(t, pool, `{"hint": true}`), "succeeded")
}

// When the replica that completes a job also works the next stage and has a
// free slot there, the hand-off creates the next job already claimed by it
// (one commit instead of two); a paused next queue is never claimed so.
func TestDirectHandOffClaimsTheNextJobInTheSameCommit(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	start(t, pool, `
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
		id := submit(t, pool, fmt.Sprintf(`{"n": %d}`, n))
		s := waitState(t, pool, id, "succeeded")
		child := waitState(t, pool, s.Children[0], "succeeded")
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
	_, err := db.New(pool).QueuePause(ctx, db.QueuePauseParams{Name: "b", Paused: true})
	require.NoError(t, err)
	id := submit(t, pool, `{"n": 99}`)
	// The hand-off's commit decided: with b paused, its job was created unclaimed.
	s := waitState(t, pool, id, "succeeded")
	child, err := db.Status(ctx, pool, s.Children[0])
	require.NoError(t, err)
	require.Equal(t, db.BatonJobStateAvailable, child.State)
	_, err = db.New(pool).QueuePause(ctx, db.QueuePauseParams{Name: "b", Paused: false})
	require.NoError(t, err)
	waitState(t, pool, s.Children[0], "succeeded")
}
