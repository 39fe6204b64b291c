package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

// slowPoll is a poll interval no test waits for: a job these tests see
// start within a second was woken, not polled.
const slowPoll = "poll_interval: 10s\n"

// A retry starts when its backoff ends, not at the next poll: the stage
// that recorded the failure sets an alarm for it (and the failure's wake-up
// hint lets other replicas set theirs). Before, a stage with backoff: 100ms
// retried about a poll interval later. It logs the lag behind the due time
// (docs/benchmarks.md has the figures).
func TestRetriesStartWhenTheirBackoffEnds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		if j.Attempt == 1 {
			return nil, errors.New("try again")
		}
		return nil, nil
	}))
	b.start(fmt.Sprintf(slowPoll+"stages:\n  - queue: a\n    handler: {go: %q}\n    backoff: 100ms\n    max_backoff: 100ms\n", name))
	var lags []time.Duration
	for range 20 {
		id := b.submit(`{}`)
		b.waitState(id, "succeeded")
		// run_at is the retry's due time; started_at its claim.
		var lag time.Duration
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT started_at - run_at FROM baton.jobs WHERE id = $1", id).Scan(&lag))
		lags = append(lags, lag)
	}
	slices.Sort(lags)
	t.Logf("retry start behind its due time: p50 %s, p90 %s, max %s", lags[len(lags)/2], lags[len(lags)*9/10], lags[len(lags)-1])
	require.Less(t, lags[len(lags)-1], time.Second, "no retry waited for the poll")
}

// A job submitted with a delay starts when it is due, not at the next poll.
func TestDelayedJobsStartWhenDue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	b.start(slowPoll + "stages:\n  - queue: a\n    handler: {exec: [cat]}\n")
	ids, err := store.Submit(context.Background(), pool, store.NewJob{Queue: "a", Delay: 300 * time.Millisecond})
	require.NoError(t, err)
	s := b.waitState(ids[0], "succeeded")
	require.Less(t, s.StartedAt.Sub(s.RunAt), time.Second)
	require.False(t, s.StartedAt.Before(s.RunAt), "never early")
}

// Re-driving a dead job, resuming a paused queue, and a job that became due
// without anyone being told (inserted by SQL run by hand) all wake the
// stage with a hint: a re-drive and a resume at once, the last when
// maintenance promotes it.
func TestRedriveResumeAndPromotionWakeTheStage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	ctx := context.Background()
	var failed atomic.Bool
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		if string(j.Payload) == `"fail once"` && !failed.Swap(true) {
			return nil, worker.Permanent(errors.New("broken"))
		}
		return nil, nil
	}))
	// Maintenance (and so promotion) every 100 ms: the last check allows a
	// second from run_at, which a 1 s maintenance tick could use up alone.
	workertest.Start(t, pool, fmt.Sprintf(slowPoll+"stages:\n  - queue: a\n    handler: {go: %q}\n", name),
		worker.Config{ID: "test-worker", Handlers: b.handlers, MaintenanceInterval: 100 * time.Millisecond})

	dead := b.submit(`"fail once"`)
	b.waitState(dead, "dead")
	require.NoError(t, store.Retry(ctx, pool, dead))
	redriven := time.Now()
	b.waitState(dead, "succeeded")
	require.Less(t, time.Since(redriven), time.Second, "a re-drive starts at once")

	_, err := store.New(pool).QueuePause(ctx, store.QueuePauseParams{Name: "a", Paused: true})
	require.NoError(t, err)
	held := b.submit(`"held"`)
	_, err = store.New(pool).QueuePause(ctx, store.QueuePauseParams{Name: "a", Paused: false})
	require.NoError(t, err)
	resumed := time.Now()
	b.waitState(held, "succeeded")
	require.Less(t, time.Since(resumed), time.Second, "a resume starts the queue's jobs at once")

	var quiet int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO baton.jobs (queue, state, payload, run_at)
		VALUES ('a', 'scheduled', '"quiet"', now() + interval '300 ms') RETURNING id`).Scan(&quiet))
	s := b.waitState(quiet, "succeeded")
	require.Less(t, s.StartedAt.Sub(s.RunAt), time.Second, "promotion's hint wakes the stage")
}

// A claim whose connection was ended under it (pg_terminate_backend, a
// proxy's restart) is made again at once on another connection, not after
// a poll interval: ending one of the worker's connections every half second
// held the pressure run's pickup p50 at 1.3 s.
func TestAClaimOnAnEndedConnectionIsMadeAgainAtOnce(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	b := &bundle{t: t, pool: pool, handlers: worker.Handlers{}}
	name := b.handle(worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) { return nil, nil }))
	workertest.Start(t, pool, fmt.Sprintf(slowPoll+"stages:\n  - queue: a\n    handler: {go: %q}\n", name),
		worker.Config{ID: "test-worker", Handlers: b.handlers, MaintenanceInterval: time.Hour})
	b.waitState(b.submit(`{}`), "succeeded") // the pool's connections, just used

	ctx := context.Background()
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	// Every other session of the database ends: the pool's connections,
	// which it hands out unchecked when idle for less than a second, and the
	// worker's listening one, which comes back with a wake-up.
	_, err = admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	require.NoError(t, err)
	ids, err := store.Submit(ctx, admin, store.NewJob{Queue: "a"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var state string
		require.NoError(t, admin.QueryRow(ctx, "SELECT state FROM baton.jobs WHERE id = $1", ids[0]).Scan(&state))
		return state == "succeeded"
	}, 5*time.Second, 10*time.Millisecond, "claimed without waiting for the 10 s poll")
}
