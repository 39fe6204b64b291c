package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// A bulk re-drive of 10,000 dead jobs goes in batches (no statement locks
// more than 1,000: their history rows show ten statements' times), and each
// job's history shows its re-drive.
func TestABulkRedriveGoesInBatches(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('a');
		INSERT INTO baton.jobs (queue, state, payload, attempts, max_attempts, finished_at, last_error)
		SELECT 'a', 'dead', '{}', 3, 3, now(), 'boom' FROM generate_series(1, 10000)`)
	require.NoError(t, err)

	dry, err := store.RetryMatching(ctx, pool, store.RetryFilter{Queue: "a", DryRun: true}, 0, time.Time{})
	require.NoError(t, err)
	require.Equal(t, store.RetryCounts{Matched: 10000, Complete: true}, dry)
	require.Equal(t, 10000, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'dead'"), "a dry run changes nothing")

	counts, err := store.RetryMatching(ctx, pool, store.RetryFilter{Queue: "a"}, 0, time.Time{})
	require.NoError(t, err)
	require.Equal(t, store.RetryCounts{Matched: 10000, Retried: 10000, Complete: true}, counts)
	require.Equal(t, 10000, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'available' AND attempts = 0"))
	require.Equal(t, 10000, count(t, pool, "SELECT count(*) FROM baton.job_history WHERE from_state = 'dead' AND to_state = 'available'"))
	require.Equal(t, 10, count(t, pool, "SELECT count(DISTINCT at) FROM baton.job_events WHERE from_state = 'dead'"), "ten batches")
}

// The filters: finished since, an error's text in any case, the state; a
// job whose unique key a live job holds is skipped and counted.
func TestBulkRedriveFilters(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('a');
		INSERT INTO baton.jobs (queue, state, payload, finished_at, last_error, unique_key, unique_states) VALUES
			('a', 'dead', '1', now() - interval '2 hours', 'connection refused', NULL, NULL),
			('a', 'dead', '2', now() - interval '10 minutes', 'Connection Refused by peer', NULL, NULL),
			('a', 'dead', '3', now() - interval '10 minutes', 'bad input', NULL, NULL),
			('a', 'canceled', '4', now(), 'connection refused', NULL, NULL),
			('a', 'dead', '5', now(), 'connection refused', 'k', '{available,running}'),
			('a', 'available', '6', NULL, NULL, 'k', '{available,running}')`)
	require.NoError(t, err)
	counts, err := store.RetryMatching(ctx, pool, store.RetryFilter{Queue: "a", Since: time.Hour, ErrorLike: "CONNECTION refused"}, 0, time.Time{})
	require.NoError(t, err)
	require.Equal(t, store.RetryCounts{Matched: 2, Retried: 1, Skipped: 1, Complete: true}, counts, "job 2, and 5 kept: job 6 holds its key")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE payload = '2' AND state = 'available'"))
	var five int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT id FROM baton.jobs WHERE payload = '5'").Scan(&five))
	require.ErrorContains(t, store.Retry(ctx, pool, five), "unique key is held by a job that is not done", "one by one too")

	counts, err = store.RetryMatching(ctx, pool, store.RetryFilter{Queue: "a", State: "canceled"}, 0, time.Time{})
	require.NoError(t, err)
	require.Equal(t, int64(1), counts.Retried)

	counts, err = store.RetryMatching(ctx, pool, store.RetryFilter{Queue: "a"}, 1, time.Time{})
	require.NoError(t, err)
	require.Equal(t, int64(2), counts.Retried, "jobs 1 and 3, one a second")

	_, err = store.RetryMatching(ctx, pool, store.RetryFilter{Queue: "a", State: "running"}, 0, time.Time{})
	require.ErrorIs(t, err, store.ErrInvalid)
}

// A submit that takes a dead job's unique key while a re-drive is looking
// makes the re-drive skip that job, not fail: the batch runs again.
func TestABulkRedriveRacingASubmitOfItsKeySkipsTheJob(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('a');
		INSERT INTO baton.jobs (queue, state, payload, finished_at, unique_key, unique_states)
		VALUES ('a', 'dead', '1', now(), 'k', '{available}'), ('a', 'dead', '2', now(), NULL, NULL)`)
	require.NoError(t, err)

	// The submit: its job holds k, not yet committed.
	submit, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer submit.Rollback(ctx) //nolint:errcheck
	_, err = submit.Exec(ctx, `INSERT INTO baton.jobs (queue, state, payload, unique_key, unique_states) VALUES ('a', 'available', '3', 'k', '{available}')`)
	require.NoError(t, err)

	done := make(chan error, 1)
	var counts store.RetryCounts
	go func() {
		var err error
		counts, err = store.RetryMatching(ctx, pool, store.RetryFilter{Queue: "a"}, 0, time.Time{})
		done <- err
	}()
	// Once the re-drive waits on the submit's index entry, commit the submit.
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%JobRetryMany%'") == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, submit.Commit(ctx))
	require.NoError(t, <-done)
	require.Equal(t, store.RetryCounts{Matched: 2, Retried: 1, Skipped: 1, Complete: true}, counts)
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE payload = '1' AND state = 'dead'"), "k is held by the submitted job")
}
