package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func submit(t *testing.T, pool *pgxpool.Pool, jobs ...store.NewJob) []int64 {
	t.Helper()
	ids, err := store.Submit(context.Background(), pool, jobs...)
	require.NoError(t, err)
	return ids
}

func claim(t *testing.T, pool *pgxpool.Pool, queue string, n int) []store.JobClaimRow {
	t.Helper()
	rows, err := store.New(pool).JobClaim(context.Background(), store.JobClaimParams{QueueName: queue, MaxJobs: int32(n), LeaseMs: 30000, WorkerID: "test", MaxAttempts: 5})
	require.NoError(t, err)
	return rows
}

func TestSubmitRejectsBadInputAndChangesNothing(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	tests := []struct {
		name string
		job  store.NewJob
	}{
		{"EmptyQueue", store.NewJob{Queue: ""}},
		{"UpperCaseQueue", store.NewJob{Queue: "Resize"}},
		{"InjectionQueue", store.NewJob{Queue: "a'; DROP TABLE baton.jobs;--"}},
		{"LongQueue", store.NewJob{Queue: string(make([]byte, 64))}},
		{"MalformedJSON", store.NewJob{Queue: "a", Payload: json.RawMessage(`{"a":`)}},
		{"NulInPayload", store.NewJob{Queue: "a", Payload: json.RawMessage(`{"a":"\u0000"}`)}},
		{"NegativePriority", store.NewJob{Queue: "a", Priority: -1}},
		{"PriorityTooHigh", store.NewJob{Queue: "a", Priority: 101}},
		{"MaxAttemptsTooHigh", store.NewJob{Queue: "a", MaxAttempts: 1001}},
		{"NegativeDelay", store.NewJob{Queue: "a", Delay: -time.Second}},
		{"LoneSurrogate", store.NewJob{Queue: "a", Payload: json.RawMessage(`["\udc00"]`)}},
		{"NumberBeyondNumeric", store.NewJob{Queue: "a", Payload: json.RawMessage(`{"n":1e131072}`)}},
		{"InvalidUTF8", store.NewJob{Queue: "a", Payload: json.RawMessage("\"\xff\"")}},
		{"RunAtYear10000InUTC", store.NewJob{Queue: "a", RunAt: time.Date(9999, 12, 31, 23, 59, 59, 0, time.FixedZone("", -3600))}},
		{"RunAtBefore2000", store.NewJob{Queue: "a", RunAt: time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.Submit(context.Background(), pool, tt.job)
			require.ErrorIs(t, err, store.ErrInvalid)
			var pgErr *pgconn.PgError
			require.False(t, errors.As(err, &pgErr), "refused before any SQL: %v", err)
		})
	}
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.jobs"))
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.job_events"))
}

func TestSubmitBatchIsAllOrNothing(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	_, err := store.Submit(context.Background(), pool, store.NewJob{Queue: "a"}, store.NewJob{Queue: "a", Priority: 500})
	require.ErrorIs(t, err, store.ErrInvalid)
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.jobs"))

	ids := submit(t, pool, store.NewJob{Queue: "a"}, store.NewJob{Queue: "b", Delay: time.Hour}, store.NewJob{Queue: "a"})
	require.Len(t, ids, 3)
	require.Less(t, ids[0], ids[1])
	require.Less(t, ids[1], ids[2])
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1 AND queue = 'b' AND state = 'scheduled'", ids[1]))
	require.Equal(t, 3, count(t, pool, "SELECT count(*) FROM baton.job_events WHERE from_state IS NULL"))
}

func TestSubmitWithKey(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	job := store.NewJob{Queue: "a", Payload: json.RawMessage(`{"x": 1}`)}

	first, replayed, err := store.SubmitWithKey(ctx, pool, "k1", job, job)
	require.NoError(t, err)
	require.False(t, replayed)
	require.Len(t, first, 2)

	// Same request (JSON whitespace aside): the original ids, nothing new.
	same := store.NewJob{Queue: "a", Payload: json.RawMessage(`{ "x":1 }`)}
	again, replayed, err := store.SubmitWithKey(ctx, pool, "k1", same, same)
	require.NoError(t, err)
	require.True(t, replayed)
	require.Equal(t, first, again)

	// Same key, another request.
	_, _, err = store.SubmitWithKey(ctx, pool, "k1", store.NewJob{Queue: "a", Payload: json.RawMessage(`{"x": 2}`)})
	require.ErrorIs(t, err, store.ErrKeyReused)
	require.ErrorIs(t, err, store.ErrInvalid)
	require.Equal(t, 2, count(t, pool, "SELECT count(*) FROM baton.jobs"))

	// A key in use by an uncommitted request.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, _, err = store.SubmitWithKey(ctx, tx, "k2", job)
	require.NoError(t, err)
	_, _, err = store.SubmitWithKey(ctx, pool, "k2", job)
	require.ErrorIs(t, err, store.ErrKeyInFlight)
	require.NoError(t, tx.Rollback(ctx))
	_, replayed, err = store.SubmitWithKey(ctx, pool, "k2", job)
	require.NoError(t, err)
	require.False(t, replayed, "a rolled-back first use leaves the key free")

	// Keys expire after 24 hours.
	_, err = pool.Exec(ctx, "UPDATE baton.idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'k1'")
	require.NoError(t, err)
	_, replayed, err = store.SubmitWithKey(ctx, pool, "k1", store.NewJob{Queue: "a", Payload: json.RawMessage(`{"x": 2}`)})
	require.NoError(t, err)
	require.False(t, replayed)
}

func TestSubmitWithKeyConcurrentDuplicatesCreateOneJob(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[string]int{}
	var ids []int64
	for range 32 {
		wg.Go(func() {
			got, replayed, err := store.SubmitWithKey(context.Background(), pool, "dup", store.NewJob{Queue: "a"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, store.ErrKeyInFlight):
				outcomes["in_flight"]++
			case err != nil:
				outcomes[err.Error()]++
			case replayed:
				outcomes["replayed"]++
				ids = append(ids, got...)
			default:
				outcomes["created"]++
				ids = append(ids, got...)
			}
		})
	}
	wg.Wait()
	require.Equal(t, 1, outcomes["created"], "%v", outcomes)
	require.Equal(t, 32, outcomes["created"]+outcomes["replayed"]+outcomes["in_flight"], "%v", outcomes)
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs"))
}

func TestClaimFillsInTheStageMaxAttempts(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	ids := submit(t, pool, store.NewJob{Queue: "a"}, store.NewJob{Queue: "a", MaxAttempts: 2})
	j, err := store.New(pool).JobGet(ctx, ids[0])
	require.NoError(t, err)
	require.Nil(t, j.MaxAttempts, "left to the stage until claimed")
	rows, err := store.New(pool).JobClaim(ctx, store.JobClaimParams{QueueName: "a", MaxJobs: 2, LeaseMs: 1000, WorkerID: "w", MaxAttempts: 9})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.Equal(t, int32(9), rows[0].MaxAttempts)
	require.Equal(t, int32(2), rows[1].MaxAttempts, "the submitter's setting wins")
}

func TestClaimNeverReturnsMoreThanAskedAndNeverSharesAJob(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	jobs := make([]store.NewJob, 500)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: "a", Priority: int16(i % 3)}
	}
	submit(t, pool, jobs...)
	submit(t, pool, store.NewJob{Queue: "other"})

	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				rows, err := store.New(pool).JobClaim(context.Background(), store.JobClaimParams{QueueName: "a", MaxJobs: 7, LeaseMs: 30000, WorkerID: "w", MaxAttempts: 5})
				if err != nil || len(rows) == 0 {
					return
				}
				mu.Lock()
				if len(rows) > 7 {
					seen[-1]++
				}
				for _, r := range rows {
					seen[r.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Zero(t, seen[-1], "a claim returned more rows than asked for")
	require.Len(t, seen, 500)
	for id, n := range seen {
		require.Equal(t, 1, n, "job %d claimed %d times", id, n)
	}
	require.Equal(t, 500, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'a' AND state = 'running' AND attempts = 1 AND lease_token = 1"))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'other' AND state = 'available'"))
}

func TestClaimOrderAndDueTime(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ids := submit(t, pool,
		store.NewJob{Queue: "a", Priority: 5},
		store.NewJob{Queue: "a", Priority: 1},
		store.NewJob{Queue: "a", Delay: time.Hour},
		store.NewJob{Queue: "a", Priority: 1},
	)
	rows := claim(t, pool, "a", 10)
	var got []int64
	for _, r := range rows {
		got = append(got, r.ID)
	}
	require.Equal(t, []int64{ids[1], ids[3], ids[0]}, got, "priority, then run_at, then id; the delayed job is not due")

	// Moving run_at into the past makes the delayed job due.
	_, err := pool.Exec(context.Background(), "UPDATE baton.jobs SET run_at = now() - interval '1s' WHERE id = $1", ids[2])
	require.NoError(t, err)
	rows = claim(t, pool, "a", 10)
	require.Len(t, rows, 1)
	require.Equal(t, ids[2], rows[0].ID)
}

func TestClaimSkipsPausedQueues(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	submit(t, pool, store.NewJob{Queue: "a"})
	_, err := pool.Exec(context.Background(), "UPDATE baton.queues SET paused = true WHERE name = 'a'")
	require.NoError(t, err)
	require.Empty(t, claim(t, pool, "a", 10))
}

func complete(t *testing.T, x store.DBTX, id, token int64, next string) []store.JobCompleteManyRow {
	t.Helper()
	rows, err := store.New(x).JobCompleteMany(context.Background(), store.JobCompleteManyParams{
		Ids: []int64{id}, LeaseTokens: []int64{token}, Results: []string{`{"ok":true}`}, NextQueues: []string{next},
		RunUs: []int64{5000}, WorkerID: "test",
	})
	require.NoError(t, err)
	return rows
}

func TestCompleteHandsOffOnceAndStaleTokensCommitNothing(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	id := submit(t, pool, store.NewJob{Queue: "a", Priority: 3, MaxAttempts: 4})[0]
	c := claim(t, pool, "a", 1)[0]

	require.Empty(t, complete(t, pool, id, c.LeaseToken+1, "b"), "a wrong token must be fenced")
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'b'"))

	rows := complete(t, pool, id, c.LeaseToken, "b")
	require.Len(t, rows, 1)
	next, err := store.New(pool).JobGet(context.Background(), rows[0].NextID)
	require.NoError(t, err)
	require.Equal(t, "b", next.Queue)
	require.Equal(t, id, *next.ParentID)
	require.JSONEq(t, `{"ok":true}`, string(next.Payload))
	require.Equal(t, int16(3), next.Priority)

	require.Empty(t, complete(t, pool, id, c.LeaseToken, "b"), "a second completion must be fenced")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'b'"))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.job_history WHERE job_id = $1 AND to_state = 'succeeded'", id))

	// The unique hand-off guard holds even if a fence were bypassed.
	_, err = pool.Exec(context.Background(), "INSERT INTO baton.jobs (queue, state, payload, max_attempts, parent_id, parent_seq) VALUES ('b', 'available', '{}', 5, $1, 0)", id)
	require.ErrorContains(t, err, "jobs_handoff_once")
}

// expireLease moves a job's lease into the past instead of waiting for it.
func expireLease(t *testing.T, pool *pgxpool.Pool, id int64) {
	t.Helper()
	setJob(t, pool, id, "lease_expires_at = now() - interval '1s'")
}

// dueNow ends a retrying job's backoff.
func dueNow(t *testing.T, pool *pgxpool.Pool, id int64) {
	t.Helper()
	setJob(t, pool, id, "run_at = now()")
}

// setJob writes columns of one job directly (set is an SQL SET list), where
// a test would otherwise wait.
func setJob(t *testing.T, pool *pgxpool.Pool, id int64, set string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), "UPDATE baton.jobs SET "+set+" WHERE id = $1", id)
	require.NoError(t, err)
}

func TestReaperRaceCompletionFirst(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	id := submit(t, pool, store.NewJob{Queue: "a"})[0]
	c := claim(t, pool, "a", 1)[0]
	expireLease(t, pool, id)

	// The completion has written but not committed when the reaper runs.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	require.Len(t, complete(t, tx, id, c.LeaseToken, "b"), 1)
	reaped, err := store.New(pool).JobReap(ctx, 100)
	require.NoError(t, err)
	require.Empty(t, reaped, "the reaper must skip a row a completion holds")
	require.NoError(t, tx.Commit(ctx))

	reaped, err = store.New(pool).JobReap(ctx, 100)
	require.NoError(t, err)
	require.Empty(t, reaped, "the reaper must not touch a finished job")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1 AND state = 'succeeded'", id))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE parent_id = $1", id))
}

func TestReaperRaceReaperFirst(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	id := submit(t, pool, store.NewJob{Queue: "a"})[0]
	zombie := claim(t, pool, "a", 1)[0]
	expireLease(t, pool, id)

	reaped, err := store.New(pool).JobReap(ctx, 100)
	require.NoError(t, err)
	require.Len(t, reaped, 1)
	require.Equal(t, store.BatonJobStateAvailable, reaped[0].State)

	// The zombie's completion is fenced while the job waits...
	require.Empty(t, complete(t, pool, id, zombie.LeaseToken, "b"))
	// ...and after another worker claimed it (to run alone: it lost a lease
	// beside others, which did not count as an attempt).
	fresh := isolatedClaim(t, pool, "a")
	require.Equal(t, zombie.LeaseToken+1, fresh.LeaseToken)
	require.Equal(t, int32(1), fresh.Attempts)
	require.Empty(t, complete(t, pool, id, zombie.LeaseToken, "b"))
	_, err = store.New(pool).JobFail(ctx, store.JobFailParams{ID: id, LeaseToken: zombie.LeaseToken, Error: "late", WorkerID: "test"})
	require.ErrorIs(t, err, pgx.ErrNoRows)

	require.Len(t, complete(t, pool, id, fresh.LeaseToken, "b"), 1)
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE parent_id = $1", id))
}

// A lease lost while the job ran beside others is not counted: the job may
// be a bystander of one that killed the worker. It runs alone next (normal
// claims skip it); a lease it loses then is its own, and ends it dead once
// its attempts are used up. A held job whose lone run never started (its
// worker died draining) costs nothing.
func TestReaperCountsOnlyALeaseLostAlone(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	id := submit(t, pool, store.NewJob{Queue: "a", MaxAttempts: 1})[0]
	claim(t, pool, "a", 1)
	expireLease(t, pool, id)
	reaped, err := q.JobReap(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateAvailable, reaped[0].State, "beside others: not counted")
	j, err := q.JobGet(ctx, id)
	require.NoError(t, err)
	require.Equal(t, [3]any{int32(0), int32(1), true}, [3]any{j.Attempts, j.LostLeases, j.Isolated})
	require.Equal(t, "lease expired: worker test died or froze while this job ran (1 time); it runs alone next", *j.LastError)
	require.Empty(t, claim(t, pool, "a", 1), "normal claims skip an isolated job")

	isolatedClaim(t, pool, "a")
	expireLease(t, pool, id)
	_, err = q.JobReap(ctx, 100)
	require.NoError(t, err)
	j, err = q.JobGet(ctx, id)
	require.NoError(t, err)
	require.Equal(t, [3]any{store.BatonJobStateAvailable, int32(0), int32(1)}, [3]any{j.State, j.Attempts, j.LostLeases},
		"held, never started: nothing counted")

	c := isolatedClaim(t, pool, "a")
	n, err := q.JobStartAlone(ctx, store.JobStartAloneParams{ID: id, LeaseToken: c.LeaseToken})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	expireLease(t, pool, id)
	reaped, err = q.JobReap(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateDead, reaped[0].State, "lost alone: counted")
	j, err = q.JobGet(ctx, id)
	require.NoError(t, err)
	require.Equal(t, [2]int32{1, 2}, [2]int32{j.Attempts, j.LostLeases})
	require.Equal(t, "lease expired: worker test died or froze while this job ran (2 times)", *j.LastError)
	require.NotNil(t, j.FinishedAt)
}

func isolatedClaim(t *testing.T, pool *pgxpool.Pool, queue string) store.JobClaimIsolatedRow {
	t.Helper()
	row, err := store.New(pool).JobClaimIsolated(context.Background(), store.JobClaimIsolatedParams{
		QueueName: queue, LeaseMs: 30000, WorkerID: "test", MaxAttempts: 5,
	})
	require.NoError(t, err)
	return row
}

func TestFailRetriesThenDies(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	id := submit(t, pool, store.NewJob{Queue: "a", MaxAttempts: 2})[0]

	c := claim(t, pool, "a", 1)[0]
	row, err := store.New(pool).JobFail(ctx, store.JobFailParams{ID: id, LeaseToken: c.LeaseToken, Error: "boom", DelayMs: 3_600_000, WorkerID: "test"})
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateRetrying, row.State)
	require.Empty(t, claim(t, pool, "a", 1), "a retrying job waits for its backoff")

	dueNow(t, pool, id)
	c = claim(t, pool, "a", 1)[0]
	row, err = store.New(pool).JobFail(ctx, store.JobFailParams{ID: id, LeaseToken: c.LeaseToken, Error: "boom again", WorkerID: "test"})
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateDead, row.State)

	s, err := store.Status(ctx, pool, id)
	require.NoError(t, err)
	require.Equal(t, "boom again", *s.LastError)
	var path []store.JobState
	for _, e := range s.History {
		path = append(path, e.To)
	}
	require.Equal(t, []store.JobState{"available", "running", "retrying", "running", "dead"}, path)

	// Permanent failures skip the remaining attempts.
	id = submit(t, pool, store.NewJob{Queue: "a", MaxAttempts: 5})[0]
	c = claim(t, pool, "a", 1)[0]
	row, err = store.New(pool).JobFail(ctx, store.JobFailParams{ID: id, LeaseToken: c.LeaseToken, Error: "bad input", Permanent: true, WorkerID: "test"})
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateDead, row.State)
}

// leased_by names the worker holding the lease, and only while there is one:
// however the lease ends (success, failure, release, reaping, cancel), the
// job's row names no lessee, and its history names the one that held it.
func TestTheLeaseEndsWithItsHolder(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	ends := map[string]func(id, token int64){
		"succeeded": func(id, token int64) { complete(t, pool, id, token, "") },
		"retrying": func(id, token int64) {
			_, err := q.JobFail(ctx, store.JobFailParams{ID: id, LeaseToken: token, Error: "boom", DelayMs: 60_000, WorkerID: "test"})
			require.NoError(t, err)
		},
		"available": func(id, token int64) {
			_, err := q.JobReleaseMany(ctx, store.JobReleaseManyParams{Ids: []int64{id}, LeaseTokens: []int64{token}, WorkerID: "test"})
			require.NoError(t, err)
		},
		"reaped": func(id, _ int64) {
			expireLease(t, pool, id)
			_, err := q.JobReap(ctx, 100)
			require.NoError(t, err)
		},
		"canceled": func(id, _ int64) { require.NoError(t, store.Cancel(ctx, pool, id)) },
	}
	outcomes := map[string]string{"succeeded": "succeeded", "retrying": "failed", "available": "released", "reaped": "lease_lost", "canceled": "canceled"}
	for end, do := range ends {
		queue := "q-" + end
		id := submit(t, pool, store.NewJob{Queue: queue, Delay: time.Millisecond})[0]
		dueNow(t, pool, id)
		c := claim(t, pool, queue, 1)[0]
		require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1 AND leased_by = 'test'", id))
		do(id, c.LeaseToken)
		require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1 AND leased_by IS NULL AND state <> 'running'", id), end)
		require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM baton.job_history
			WHERE job_id = $1 AND from_state = 'running' AND worker = 'test'`, id), "%s: the history names the holder", end)
		// baton.attempts tells how the attempt ended, and when it was due:
		// the run_at it was claimed at, whatever the end did to run_at.
		var outcome string
		var due time.Time
		require.NoError(t, pool.QueryRow(ctx, "SELECT outcome, due_at FROM baton.attempts WHERE job_id = $1", id).Scan(&outcome, &due))
		require.Equal(t, outcomes[end], outcome, end)
		require.True(t, due.Equal(c.RunAt), "%s: due %s, claimed with run_at %s", end, due, c.RunAt)
	}
}

// A job that failed and then succeeded has no last error: its state says it
// is done, and the failed attempt's error stays in its history.
func TestSuccessClearsTheLastError(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	id := submit(t, pool, store.NewJob{Queue: "a", MaxAttempts: 3})[0]
	c := claim(t, pool, "a", 1)[0]
	_, err := store.New(pool).JobFail(ctx, store.JobFailParams{ID: id, LeaseToken: c.LeaseToken, Error: "boom", WorkerID: "test"})
	require.NoError(t, err)
	dueNow(t, pool, id)
	c = claim(t, pool, "a", 1)[0]
	require.Len(t, complete(t, pool, id, c.LeaseToken, ""), 1)

	s, err := store.Status(ctx, pool, id)
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateSucceeded, s.State)
	require.Nil(t, s.LastError)
	var errs []string
	for _, e := range s.History {
		if e.Error != nil {
			errs = append(errs, *e.Error)
		}
	}
	require.Equal(t, []string{"boom"}, errs)
}

func TestCancelAndRetry(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	ids := submit(t, pool, store.NewJob{Queue: "a"}, store.NewJob{Queue: "a"})

	require.NoError(t, store.Cancel(ctx, pool, ids[0]))
	require.ErrorIs(t, store.Cancel(ctx, pool, ids[0]), store.ErrConflict)
	require.ErrorIs(t, store.Retry(ctx, pool, ids[1]), store.ErrConflict, "an available job cannot be retried")
	require.ErrorIs(t, store.Cancel(ctx, pool, 999999), store.ErrNotFound)

	// Canceling a running job fences its worker's completion.
	c := claim(t, pool, "a", 1)[0]
	require.Equal(t, ids[1], c.ID)
	require.NoError(t, store.Cancel(ctx, pool, ids[1]))
	require.Empty(t, complete(t, pool, ids[1], c.LeaseToken, "b"))

	require.NoError(t, store.Retry(ctx, pool, ids[1]))
	s, err := store.Status(ctx, pool, ids[1])
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateAvailable, s.State)
	require.Zero(t, s.Attempts)
}

func TestStatusOfUnknownJob(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	_, err := store.Status(context.Background(), pool, 42)
	require.True(t, errors.Is(err, store.ErrNotFound))
}

func TestReleaseDoesNotCountTheAttempt(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	id := submit(t, pool, store.NewJob{Queue: "a"})[0]
	c := claim(t, pool, "a", 1)[0]
	released, err := store.New(pool).JobReleaseMany(ctx, store.JobReleaseManyParams{Ids: []int64{id}, LeaseTokens: []int64{c.LeaseToken}, WorkerID: "test"})
	require.NoError(t, err)
	require.Equal(t, []int64{id}, released)
	j, err := store.New(pool).JobGet(ctx, id)
	require.NoError(t, err)
	require.Equal(t, store.BatonJobStateAvailable, j.State)
	require.Zero(t, j.Attempts)
}

func TestPromoteAndQueueSummary(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	ids := submit(t, pool, store.NewJob{Queue: "a", Delay: time.Hour}, store.NewJob{Queue: "a", Delay: time.Hour}, store.NewJob{Queue: "b"})
	_, err := pool.Exec(ctx, "UPDATE baton.jobs SET run_at = now() - interval '1 minute' WHERE id = $1", ids[0])
	require.NoError(t, err)
	n, err := store.New(pool).JobPromote(ctx, 100)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	sum, err := store.New(pool).QueueSummary(ctx, store.QueueSummaryParams{MaxQueues: 1000})
	require.NoError(t, err)
	require.Len(t, sum, 2)
	require.Equal(t, "a", sum[0].Queue)
	require.Equal(t, int64(1), sum[0].Scheduled)
	require.Equal(t, int64(1), sum[0].Available)
	require.GreaterOrEqual(t, sum[0].OldestAvailableSeconds, 59.0)
	require.Equal(t, int64(1), sum[1].Available)
}

func TestJobEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	submit(t, pool, store.NewJob{Queue: "a"})
	_, err := pool.Exec(context.Background(), "UPDATE baton.job_events SET error = 'rewritten'")
	require.ErrorContains(t, err, "append-only")
}

func TestMigrateDownAndUpAgain(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	m, err := store.Migrator(context.Background(), u)
	require.NoError(t, err)
	defer m.Close()
	latest, _, err := m.Version()
	require.NoError(t, err)
	require.GreaterOrEqual(t, latest, uint(2))
	require.NoError(t, m.Down())
	require.NoError(t, m.Up())
	v, dirty, err := m.Version()
	require.NoError(t, err)
	require.False(t, dirty)
	require.Equal(t, latest, v)
}

func TestWithTxCommitsOrRollsBack(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	err := store.WithTx(ctx, pool, func(q *store.Queries) error {
		require.NoError(t, q.QueueCreate(ctx, "kept"))
		return nil
	})
	require.NoError(t, err)
	boom := errors.New("boom")
	err = store.WithTx(ctx, pool, func(q *store.Queries) error {
		require.NoError(t, q.QueueCreate(ctx, "dropped"))
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.queues"))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.queues WHERE name = 'kept'"))
}

func TestCompleteManyWithAZombieAndTheOwnerInOneGroup(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	id := submit(t, pool, store.NewJob{Queue: "a"})[0]
	zombie := claim(t, pool, "a", 1)[0]
	expireLease(t, pool, id)
	_, err := store.New(pool).JobReap(ctx, 10)
	require.NoError(t, err)
	owner := isolatedClaim(t, pool, "a") // reaped beside others: it runs alone next

	rows, err := store.New(pool).JobCompleteMany(ctx, store.JobCompleteManyParams{
		Ids: []int64{id, id}, LeaseTokens: []int64{zombie.LeaseToken, owner.LeaseToken},
		Results: []string{`"zombie"`, `"owner"`}, NextQueues: []string{"b", "b"},
	})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, owner.LeaseToken, rows[0].LeaseToken, "only the current claim commits")
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM baton.jobs WHERE parent_id = $1 AND payload = '"owner"'`, id))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE parent_id = $1", id))
}

// history renders a job's history compactly: "from>to#attempt/token@worker!error".
func history(t *testing.T, pool *pgxpool.Pool, id int64) []string {
	t.Helper()
	s, err := store.Status(context.Background(), pool, id)
	require.NoError(t, err)
	var out []string
	for i, e := range s.History {
		from := ""
		if e.From != nil {
			from = string(*e.From)
		}
		entry := fmt.Sprintf("%s>%s#%d", from, e.To, e.Attempt)
		if e.Worker != nil {
			entry += "@" + *e.Worker
		}
		if e.Error != nil {
			entry += "!" + *e.Error
		}
		if i > 0 {
			require.False(t, e.At.Before(s.History[i-1].At), "history is in time order: %+v", s.History)
		}
		out = append(out, entry)
	}
	return out
}

func TestHistoryShowsTheClaimsHandOffsAndSuccessesItDoesNotStore(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	id := submit(t, pool, store.NewJob{Queue: "a"})[0]

	// A running attempt shows from the job row; a failure stores the row
	// that ends it, with the claim's time.
	c := claim(t, pool, "a", 1)[0]
	require.Equal(t, []string{">available#0", "available>running#1@test"}, history(t, pool, id))
	_, err := q.JobFail(ctx, store.JobFailParams{ID: id, LeaseToken: c.LeaseToken, Error: "boom", WorkerID: "test"})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE baton.jobs SET run_at = now() WHERE id = $1", id)
	require.NoError(t, err)
	// Released on shutdown: the attempt shows, though it does not count.
	c = claim(t, pool, "a", 1)[0]
	_, err = q.JobReleaseMany(ctx, store.JobReleaseManyParams{Ids: []int64{id}, LeaseTokens: []int64{c.LeaseToken}, WorkerID: "test"})
	require.NoError(t, err)
	// Reaped while it ran beside others (not counted: it runs alone next),
	// then claimed to run alone and handed off.
	claim(t, pool, "a", 1)
	expireLease(t, pool, id)
	_, err = q.JobReap(ctx, 10)
	require.NoError(t, err)
	ic := isolatedClaim(t, pool, "a")
	next := complete(t, pool, id, ic.LeaseToken, "b")[0].NextID
	require.Equal(t, []string{
		">available#0",
		"available>running#1@test", "running>retrying#1@test!boom",
		"retrying>running#2@test", "running>available#2@test!released on worker shutdown",
		"available>running#2@test", "running>available#2@test!lease expired: worker test died or froze while this job ran (1 time); it runs alone next",
		"available>running#2@test", "running>succeeded#2@test",
	}, history(t, pool, id))
	// Only the changes no other row implies were stored: the creation and
	// the three ends of attempts that did not succeed. The success is the
	// job's row's (migration 28), and the reports read it from there.
	require.Equal(t, 4, count(t, pool, "SELECT count(*) FROM baton.job_events WHERE job_id = $1", id))
	var worker string
	var run, wait float64
	require.NoError(t, pool.QueryRow(ctx, `SELECT worker, run_seconds, wait_seconds FROM baton.attempts
		WHERE job_id = $1 AND outcome = 'succeeded'`, id).Scan(&worker, &run, &wait))
	require.Equal(t, "test", worker)
	require.InDelta(t, 0.005, run, 1e-9, "the run time the completion reported")
	require.GreaterOrEqual(t, wait, 0.0)

	// The handed-off job's creation is implied by its parent; canceling it
	// while it runs shows the claim and whose run was canceled.
	require.Equal(t, []string{">available#0"}, history(t, pool, next))
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.job_events WHERE job_id = $1", next))
	claim(t, pool, "b", 1)
	require.NoError(t, store.Cancel(ctx, pool, next))
	require.Equal(t, []string{">available#0", "available>running#1@test", "running>canceled#1@test"}, history(t, pool, next))

	// Rows stored before migration 7 (a claim row, a hand-off's creation
	// row) are shown once, not again as implied.
	old := submit(t, pool, store.NewJob{Queue: "c"})[0]
	c = claim(t, pool, "c", 1)[0]
	_, err = pool.Exec(ctx, `INSERT INTO baton.job_events (job_id, at, from_state, to_state, attempt, lease_token, worker)
		SELECT id, started_at, 'available', 'running', attempts, lease_token, leased_by FROM baton.jobs WHERE id = $1`, old)
	require.NoError(t, err)
	require.Equal(t, []string{">available#0", "available>running#1@test"}, history(t, pool, old))
	_, err = pool.Exec(ctx, `INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token, worker)
		VALUES ($1, 'running', 'succeeded', 1, $2, 'test')`, old, c.LeaseToken)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "UPDATE baton.jobs SET state = 'succeeded' WHERE id = $1", old)
	require.NoError(t, err)
	require.Equal(t, []string{">available#0", "available>running#1@test", "running>succeeded#1@test"}, history(t, pool, old))
	child := complete(t, pool, c.ID, c.LeaseToken, "d") // fenced: already succeeded by hand
	require.Empty(t, child)
	_, err = pool.Exec(ctx, `INSERT INTO baton.jobs (queue, state, payload, parent_id, parent_seq) VALUES ('d', 'available', '{}', $1, 0)`, old)
	require.NoError(t, err)
	var oldChild int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT id FROM baton.jobs WHERE parent_id = $1", old).Scan(&oldChild))
	_, err = pool.Exec(ctx, `INSERT INTO baton.job_events (job_id, to_state, attempt, lease_token) VALUES ($1, 'available', 0, 0)`, oldChild)
	require.NoError(t, err)
	require.Equal(t, []string{">available#0"}, history(t, pool, oldChild))
}

// Refused tells the database refusing a statement's data (run again, it
// fails again) from failing to run it (a connection, a shutdown, a deadlock).
func TestRefusedTellsRefusalsFromFailuresToRun(t *testing.T) {
	t.Parallel()
	for err, refused := range map[error]bool{
		&pgconn.PgError{Code: "23514"}:                            true, // check violation
		&pgconn.PgError{Code: "23505"}:                            true, // unique violation
		&pgconn.PgError{Code: "22P05"}:                            true, // untranslatable character
		&pgconn.PgError{Code: "54001"}:                            true, // statement too complex
		store.MapError(&pgconn.PgError{Code: "22003"}):            true,
		&pgconn.PgError{Code: "57P01"}:                            false, // admin shutdown
		&pgconn.PgError{Code: "08006"}:                            false, // connection failure
		&pgconn.PgError{Code: "25006"}:                            false, // read-only (a failover)
		&pgconn.PgError{Code: "40P01"}:                            false, // deadlock
		&pgconn.PgError{Code: "40001"}:                            false, // serialization failure
		fmt.Errorf("x: %w", io.ErrUnexpectedEOF):                  false,
		context.DeadlineExceeded:                                  false,
		fmt.Errorf("%w: down", store.ErrUnavailable):              false,
		fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "23514"}): true,
	} {
		require.Equal(t, refused, store.Refused(err), "%v", err)
	}
}

func TestParseRetention(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"24h": 24 * time.Hour, "90m": 90 * time.Minute, "forever": store.Forever, "Forever": store.Forever} {
		got, err := store.ParseRetention(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0s", "-1h", "soon", "1 day"} {
		_, err := store.ParseRetention(in)
		require.ErrorIs(t, err, store.ErrInvalid, in)
	}
	require.Nil(t, store.FormatRetention(nil))
	forever, hour := int64(-1), int64(3_600_000)
	require.Equal(t, "forever", *store.FormatRetention(&forever))
	require.Equal(t, "1h0m0s", *store.FormatRetention(&hour))
}

// From Go, Submit returns a duplicate's holder's id, and SubmitResults says
// which jobs were duplicates; plain jobs in the same batch go in as before,
// in input order.
func TestSubmitResultsSaysWhichJobsWereDuplicates(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	held, err := store.Submit(ctx, pool, store.NewJob{Queue: "a", UniqueKey: "k"})
	require.NoError(t, err)
	results, replayed, err := store.SubmitResults(ctx, pool, "", store.NewJob{Queue: "a"}, store.NewJob{Queue: "a", UniqueKey: "k"},
		store.NewJob{Queue: "a", UniqueKey: "m"}, store.NewJob{Queue: "a"}, store.NewJob{Queue: "a", UniqueKey: "m"})
	require.NoError(t, err)
	require.False(t, replayed)
	require.Equal(t, []bool{false, true, false, false, true}, []bool{results[0].Duplicate, results[1].Duplicate,
		results[2].Duplicate, results[3].Duplicate, results[4].Duplicate})
	require.Equal(t, held[0], results[1].ID)
	require.Equal(t, results[2].ID, results[4].ID)
	require.Less(t, results[0].ID, results[3].ID, "plain jobs in input order")
	require.Equal(t, 4, count(t, pool, "SELECT count(*) FROM baton.jobs"))

	// Under an idempotency key too; a replay returns the same ids.
	results, _, err = store.SubmitResults(ctx, pool, "req-1", store.NewJob{Queue: "a", UniqueKey: "k"}, store.NewJob{Queue: "a", UniqueKey: "n"})
	require.NoError(t, err)
	require.True(t, results[0].Duplicate)
	again, replayed, err := store.SubmitResults(ctx, pool, "req-1", store.NewJob{Queue: "a", UniqueKey: "k"}, store.NewJob{Queue: "a", UniqueKey: "n"})
	require.NoError(t, err)
	require.True(t, replayed)
	require.Equal(t, results[1].ID, again[1].ID)

	_, err = store.Submit(ctx, pool, store.NewJob{Queue: "a", UniqueFor: time.Hour})
	require.ErrorIs(t, err, store.ErrInvalid, "unique_for needs a key")
	_, err = store.Submit(ctx, pool, store.NewJob{Queue: "a", UniqueKey: "k", UniqueStates: []store.JobState{"done"}})
	require.ErrorIs(t, err, store.ErrInvalid)
}

// pgx's prepared statements through a transaction pooler fail before they
// run: the database is unavailable as configured (an API answers 503, not
// 500), and the error says what to set.
func TestPreparedStatementsLostToAPoolerAreUnavailable(t *testing.T) {
	for _, code := range []string{"26000", "42P05"} {
		err := store.MapError(&pgconn.PgError{Code: code, Message: `prepared statement "stmtcache_1" does not exist`})
		require.ErrorIs(t, err, store.ErrUnavailable)
		require.ErrorIs(t, err, store.ErrTransactionPooler)
		require.ErrorContains(t, err, "set BATON_POOLER=transaction")
	}
}

// A heartbeat and a completion of the same jobs used to lock them in their
// own orders and deadlock: the heartbeat held job 1 and waited for job 2,
// which the completion held while it waited for job 1, and one of them
// failed after the server's deadlock check (a second); a failed completion
// then committed its group one job at a time. The heartbeat now passes over
// a row a completion holds, without waiting, and still reports it owned.
func TestHeartbeatNeverWaitsForACompletion(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	submit(t, pool, store.NewJob{Queue: "a"}, store.NewJob{Queue: "a"})
	jobs := claim(t, pool, "a", 2)
	require.Len(t, jobs, 2)
	first, second := jobs[0], jobs[1]
	setJob(t, pool, first.ID, "lease_expires_at = now() + interval '1s'")
	setJob(t, pool, second.ID, "lease_expires_at = now() + interval '1s'")

	// The completion of the second job has written but not committed.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	require.Len(t, complete(t, tx, second.ID, second.LeaseToken, "b"), 1)

	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kept, err := store.New(pool).JobHeartbeat(hctx, store.JobHeartbeatParams{
		Ids: []int64{first.ID, second.ID}, LeaseTokens: []int64{first.LeaseToken, second.LeaseToken}, LeaseMs: 60000, MaxJobLeaseMs: 3600000,
	})
	require.NoError(t, err, "the heartbeat must not wait for the completion's lock")
	require.ElementsMatch(t, []int64{first.ID, second.ID}, kept, "both jobs are still this worker's")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1 AND lease_expires_at > now() + interval '30s'", first.ID), "the free job's lease is extended")

	// The completion goes on, taking the row the heartbeat extended.
	require.Len(t, complete(t, tx, first.ID, first.LeaseToken, "b"), 1)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, 2, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'a' AND state = 'succeeded'"))

	// Once they are finished, the heartbeat says both are gone.
	kept, err = store.New(pool).JobHeartbeat(ctx, store.JobHeartbeatParams{
		Ids: []int64{first.ID, second.ID}, LeaseTokens: []int64{first.LeaseToken, second.LeaseToken}, LeaseMs: 60000, MaxJobLeaseMs: 3600000,
	})
	require.NoError(t, err)
	require.Empty(t, kept)
}
