package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// claimGrouped claims up to n jobs of queue as a stage with the given
// group concurrency and fairness would, and returns their ids.
func claimGrouped(t *testing.T, q *store.Queries, queue string, n, groupConcurrency int, fair bool) []int64 {
	t.Helper()
	rows, err := q.JobClaimGrouped(context.Background(), store.JobClaimGroupedParams{
		QueueName: queue, MaxJobs: int32(n), GroupConcurrency: int32(groupConcurrency), Fair: fair,
		LeaseMs: 30000, WorkerID: "test", MaxAttempts: 5, MaxJobLeaseMs: 30000,
	})
	require.NoError(t, err)
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids
}

// With group_concurrency, a group's jobs are claimed in submit order, no
// more than the limit less its running jobs; a job not due yet keeps its
// place (the jobs behind it wait); jobs without a group are not limited.
func TestGroupConcurrencyClaimsEachGroupsFirstJobs(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	a := submit(t, pool, store.NewJob{Queue: "q", Group: "a"}, store.NewJob{Queue: "q", Group: "a"}, store.NewJob{Queue: "q", Group: "a"})
	b := submit(t, pool, store.NewJob{Queue: "q", Group: "b", Delay: time.Hour}, store.NewJob{Queue: "q", Group: "b"})
	free := submit(t, pool, store.NewJob{Queue: "q"}, store.NewJob{Queue: "q"}, store.NewJob{Queue: "q"})

	got := claimGrouped(t, q, "q", 100, 2, false)
	require.ElementsMatch(t, []int64{a[0], a[1], b[1], free[0], free[1], free[2]}, got,
		"a's first two; b's second (its first, delayed, takes one of its two places); every job without a group")
	require.Empty(t, claimGrouped(t, q, "q", 100, 2, false), "a has two running; b's delayed job holds its place")

	_, err := pool.Exec(ctx, "UPDATE baton.jobs SET state = 'succeeded' WHERE id = $1", a[0])
	require.NoError(t, err)
	require.Equal(t, []int64{a[2]}, claimGrouped(t, q, "q", 100, 2, false))

	// One at a time: the delayed job, due now, runs before nothing else of b.
	_, err = pool.Exec(ctx, "UPDATE baton.jobs SET run_at = now() WHERE id = $1", b[0])
	require.NoError(t, err)
	require.Equal(t, []int64{b[0]}, claimGrouped(t, q, "q", 100, 2, false))
}

// An isolated job (one that lost a lease beside others) is claimed alone,
// and within its group's limit too.
func TestAnIsolatedJobKeepsToItsGroupsLimit(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	ids := submit(t, pool, store.NewJob{Queue: "q", Group: "a"}, store.NewJob{Queue: "q", Group: "a"})
	_, err := pool.Exec(ctx, "UPDATE baton.jobs SET isolated = true WHERE id = $1", ids[1])
	require.NoError(t, err)
	require.Equal(t, []int64{ids[0]}, claimGrouped(t, q, "q", 10, 1, false))
	p := store.JobClaimIsolatedParams{QueueName: "q", LeaseMs: 30000, WorkerID: "test", MaxAttempts: 5, MaxJobLeaseMs: 30000, GroupConcurrency: 1}
	_, err = q.JobClaimIsolated(ctx, p)
	require.ErrorIs(t, store.MapError(err), store.ErrNotFound, "its group has one running")
	_, err = pool.Exec(ctx, "UPDATE baton.jobs SET state = 'succeeded' WHERE id = $1", ids[0])
	require.NoError(t, err)
	row, err := q.JobClaimIsolated(ctx, p)
	require.NoError(t, err)
	require.Equal(t, ids[1], row.ID)
}

// A fair claim takes turns between the groups by their weights, and a
// group that was idle starts at the queue's clock: no credit saved up.
func TestFairClaimsTakeTurnsByWeight(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	var jobs []store.NewJob
	for range 30 {
		jobs = append(jobs, store.NewJob{Queue: "q", Group: "big"})
	}
	for range 30 {
		jobs = append(jobs, store.NewJob{Queue: "q", Group: "small"})
	}
	submit(t, pool, jobs...)
	three := int32(3)
	_, err := q.QueueGroupWeight(ctx, store.QueueGroupWeightParams{Queue: "q", GroupKey: "small", Weight: &three})
	require.NoError(t, err)

	groups := func(ids []int64) map[string]int {
		n := map[string]int{}
		for _, id := range ids {
			var g string
			require.NoError(t, pool.QueryRow(ctx, "SELECT group_key FROM baton.jobs WHERE id = $1", id).Scan(&g))
			n[g]++
		}
		return n
	}
	require.Equal(t, map[string]int{"big": 2, "small": 6}, groups(claimGrouped(t, q, "q", 8, 0, true)), "3 to 1, though big's jobs are older")
	var took []int64
	for range 4 {
		took = append(took, claimGrouped(t, q, "q", 1, 0, true)...)
	}
	require.Equal(t, map[string]int{"big": 1, "small": 3}, groups(took), "one claim at a time, the same turns")

	// A group that comes later is not owed the turns it missed.
	late := submit(t, pool, store.NewJob{Queue: "q", Group: "late"}, store.NewJob{Queue: "q", Group: "late"}, store.NewJob{Queue: "q", Group: "late"})
	require.Equal(t, map[string]int{"big": 1, "small": 3, "late": 1}, groups(claimGrouped(t, q, "q", 5, 0, true)))
	require.Equal(t, 2, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = ANY ($1) AND state = 'available'", late))

	// Tags left behind by groups whose turn the clock passed are pruned.
	_, err = pool.Exec(ctx, "UPDATE baton.jobs SET state = 'canceled' WHERE group_key = 'big'")
	require.NoError(t, err)
	for len(claimGrouped(t, q, "q", 50, 0, true)) > 0 {
	}
	_, err = pool.Exec(ctx, "UPDATE baton.queues SET fair_clock = fair_clock + 100 WHERE name = 'q'")
	require.NoError(t, err)
	n, err := q.QueueGroupsPrune(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "big's and late's rows; small keeps its weight")
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.queue_groups"))
}

// A queue's rate bucket holds one second's worth of claims, fills at the
// rate in database time, and is spent by the claims that hold the queue.
func TestRateBucketHoldsOneSecondsWorth(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	require.NoError(t, q.QueueCreate(ctx, "q"))
	hold := func(count int32, periodMs int32) float64 {
		h, err := q.QueueHoldForClaim(ctx, store.QueueHoldForClaimParams{Name: "q", RateCount: count, RatePeriodMs: periodMs})
		require.NoError(t, err)
		return h.Tokens
	}
	require.Equal(t, -1.0, hold(0, 0), "no rate: no bucket")
	require.Equal(t, 20.0, hold(20, 1000), "a full bucket: one second's worth")
	require.Equal(t, 1.0, hold(30, 60000), "at least one claim")
	require.NoError(t, q.QueueSpendTokens(ctx, store.QueueSpendTokensParams{Name: "q", Tokens: 0}))
	_, err := pool.Exec(ctx, "UPDATE baton.queues SET rate_at = now() - interval '250 milliseconds' WHERE name = 'q'")
	require.NoError(t, err)
	require.InDelta(t, 5.0, hold(20, 1000), 0.5, "a quarter second at 20/s")
	_, err = pool.Exec(ctx, "UPDATE baton.queues SET rate_at = now() - interval '1 hour' WHERE name = 'q'")
	require.NoError(t, err)
	require.Equal(t, 20.0, hold(20, 1000), "never more than one second's worth")
	rate := store.RateOf(20, 1000)
	require.Equal(t, "20/s", rate.String())
	for _, bad := range []string{"20/fortnight", "0/s", "-1/s", "20", "/s", "1.5/s", "01/s", "1000001/s"} {
		_, err := store.ParseRate(bad)
		require.ErrorIs(t, err, store.ErrInvalid, bad)
	}
}
