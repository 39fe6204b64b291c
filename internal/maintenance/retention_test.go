package maintenance_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/store"
)

// Maintenance deletes finished jobs, with their history, once they have been
// finished longer than their queue keeps them: the queue's override, else
// the replica's retention. It never touches a running or waiting job, keeps
// queue_summary's counts exact, and a job handed off from a pruned one keeps
// its parent_id.
func TestPruneDeletesWhatRetentionLetsGo(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	forever, halfHour := int64(-1), (30 * time.Minute).Milliseconds()
	_, err := q.QueueSet(ctx, store.QueueSetParams{Name: "b", SucceededMs: &forever, DeadMs: &halfHour, SetSucceeded: true, SetDead: true})
	require.NoError(t, err)
	require.NoError(t, q.QueueCreate(ctx, "a"))

	// job makes a job in a state, finished (or made) age ago, with a history row.
	job := func(queue, state, age string, parent *int64) int64 {
		t.Helper()
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `
			WITH j AS (
				INSERT INTO baton.jobs (queue, state, payload, run_at, parent_id, parent_seq, finished_at)
				VALUES ($1, $2::baton.job_state, '{}', now() - $3::interval, $4::bigint, CASE WHEN $4::bigint IS NULL THEN NULL ELSE 0 END,
				        CASE WHEN $2 IN ('succeeded', 'dead', 'canceled') THEN now() - $3::interval END)
				RETURNING id, state)
			, e AS (INSERT INTO baton.job_events (job_id, to_state, attempt, lease_token) SELECT id, state, 0, 0 FROM j)
			SELECT id FROM j`, queue, state, age, parent).Scan(&id))
		return id
	}
	parent := job("a", "succeeded", "2 hours", nil)
	pruned := []int64{
		parent,
		job("a", "dead", "4 hours", nil),
		job("b", "dead", "1 hour", nil), // b keeps dead jobs half an hour
	}
	kept := []int64{
		job("a", "succeeded", "30 minutes", nil),
		job("a", "dead", "2 hours", nil),
		job("a", "canceled", "100 days", nil), // canceled: forever
		job("a", "running", "2 days", nil),    // never finished: never pruned
		job("a", "available", "10 days", nil),
		job("a", "retrying", "10 days", nil),
		job("b", "succeeded", "2 days", nil), // b keeps succeeded jobs forever
		job("c", "available", "3 hours", &parent),
	}
	child := kept[len(kept)-1]

	n, more, err := maintenance.Prune(ctx, pool, maintenance.Retention{Succeeded: time.Hour, Dead: 3 * time.Hour, Canceled: store.Forever})
	require.NoError(t, err)
	require.EqualValues(t, len(pruned), n)
	require.False(t, more)
	ids := func(sql string) []int64 {
		rows, err := pool.Query(ctx, sql)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		return got
	}
	left := ids("SELECT id FROM baton.jobs ORDER BY id")
	slices.Sort(kept)
	require.Equal(t, kept, left)
	require.Empty(t, slices.DeleteFunc(ids("SELECT DISTINCT job_id FROM baton.job_events"), func(id int64) bool { return slices.Contains(kept, id) }),
		"the pruned jobs' history went with them")

	// Where it came from stays readable.
	st, err := store.Status(ctx, pool, child)
	require.NoError(t, err)
	require.Equal(t, &parent, st.ParentID)
	hops, err := q.JobLineage(ctx, child)
	require.NoError(t, err)
	require.Len(t, hops, 1)

	// The counts stay exact.
	maintenance.Pass(ctx, pool, slog.New(slog.DiscardHandler))
	summary, err := q.QueueSummary(ctx, store.QueueSummaryParams{MaxQueues: 1000})
	require.NoError(t, err)
	for _, s := range summary {
		var rows [7]int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE state = 'scheduled'), count(*) FILTER (WHERE state = 'available'),
			count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'retrying'),
			count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'dead'),
			count(*) FILTER (WHERE state = 'canceled') FROM baton.jobs WHERE queue = $1`, s.Queue).
			Scan(&rows[0], &rows[1], &rows[2], &rows[3], &rows[4], &rows[5], &rows[6]))
		require.Equal(t, rows, [7]int64{s.Scheduled, s.Available, s.Running, s.Retrying, s.Succeeded, s.Dead, s.Canceled}, s.Queue)
	}

	// Nothing is left to prune under the same policy.
	n, _, err = maintenance.Prune(ctx, pool, maintenance.Retention{Succeeded: time.Hour, Dead: 3 * time.Hour, Canceled: store.Forever})
	require.NoError(t, err)
	require.Zero(t, n)
}

// Replicas prune side by side: while one replica's batch is under way
// (held here by a lock on its oldest job's history), another's Prune
// deletes the jobs that batch did not take. One replica at a time, as it
// was, fell behind four replicas finishing jobs.
func TestReplicasPruneSideBySide(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	oldest := succeededTwoDaysAgo(t, pool)
	_, err := pool.Exec(ctx, `INSERT INTO baton.jobs (queue, state, payload, attempts, started_at, finished_at)
		SELECT 'q', 'succeeded', '{}', 1, now() - interval '2 days', now() - interval '1 day' - interval '1 second' * g
		FROM generate_series(1, 1499) g`)
	require.NoError(t, err)

	holder, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer holder.Rollback(ctx) //nolint:errcheck // released below; this is for a failed assertion
	_, err = holder.Exec(ctx, "SELECT 1 FROM baton.job_events WHERE job_id = $1 FOR UPDATE", oldest)
	require.NoError(t, err)
	first := make(chan int64, 1)
	go func() {
		n, _, err := maintenance.Prune(ctx, pool, maintenance.Retention{})
		assert.NoError(t, err)
		first <- n
	}()
	awaitPruneWaiting(t, pool) // the first replica's batch, the 1,000 oldest

	n, more, err := maintenance.Prune(ctx, pool, maintenance.Retention{})
	require.NoError(t, err)
	require.EqualValues(t, 500, n, "the second replica prunes the jobs the first one's batch does not hold")
	require.False(t, more)

	require.NoError(t, holder.Rollback(ctx))
	require.EqualValues(t, 1000, <-first)
	var left int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM baton.jobs").Scan(&left))
	require.Zero(t, left)
}

// A Prune stopped mid-batch (its worker shutting down) finishes the batch
// before it returns, so that no lock of it outlives the worker: ended by
// closing its connection, the transaction's server session held its locks a
// moment longer (the prune lock of before, which a Prune right after a
// worker's stop found taken; its rows' locks now). No advisory lock is
// taken at all since replicas prune side by side; the check stays.
func TestPruneFinishesTheBatchUnderWayWhenStopped(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	id := succeededTwoDaysAgo(t, pool)

	// A lock on the job's history holds the batch's delete.
	holder, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer holder.Rollback(ctx) //nolint:errcheck // released below; this is for a failed assertion
	_, err = holder.Exec(ctx, "SELECT 1 FROM baton.job_events WHERE job_id = $1 FOR UPDATE", id)
	require.NoError(t, err)

	stop, cancel := context.WithCancel(ctx)
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, _, err := maintenance.Prune(stop, pool, maintenance.Retention{})
		done <- result{n, err}
	}()
	awaitPruneWaiting(t, pool)
	cancel()
	select {
	case r := <-done:
		t.Fatalf("Prune returned while its batch waited: %d, %v", r.n, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	require.NoError(t, holder.Rollback(ctx))
	r := <-done
	require.NoError(t, r.err)
	require.EqualValues(t, 1, r.n, "the batch under way ran to its end")
	var held int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
		WHERE l.locktype = 'advisory' AND d.datname = current_database()`).Scan(&held))
	require.Zero(t, held, "the prune lock went with the batch")
}

// awaitPruneWaiting waits until a prune batch waits on a lock.
func awaitPruneWaiting(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	require.Eventually(t, func() bool {
		var waiting bool
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%JobPrune%')`).Scan(&waiting))
		return waiting
	}, 10*time.Second, 5*time.Millisecond, "a prune batch waits on the history's lock")
}

// succeededTwoDaysAgo submits a job and makes it one that succeeded two
// days ago: past the default retention.
func succeededTwoDaysAgo(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	ctx := context.Background()
	ids, err := store.Submit(ctx, pool, store.NewJob{Queue: "q"})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE baton.jobs SET state = 'succeeded', finished_at = now() - interval '2 days' WHERE id = $1", ids[0])
	require.NoError(t, err)
	return ids[0]
}
