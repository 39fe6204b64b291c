package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/worker"
)

// reportRun moves 20 jobs through ingest -> publish: every fifth fails for
// good ("bad input"), and jobs 7 and 14 fail once ("flaky") and then succeed.
// So ingest ends with 16 succeeded and 4 dead, publish with 16 succeeded.
func reportRun(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	ingest := register(t, worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		var p struct{ N int }
		if err := json.Unmarshal(j.Payload, &p); err != nil {
			return nil, err
		}
		switch {
		case p.N%5 == 0:
			return nil, worker.Permanent(errors.New("bad input"))
		case p.N%7 == 0 && j.Attempt == 1:
			return nil, errors.New("flaky")
		}
		return j.Payload, nil
	}))
	publish := register(t, worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		return j.Payload, nil
	}))
	var jobs []db.NewJob
	for n := 1; n <= 20; n++ {
		jobs = append(jobs, db.NewJob{Queue: "ingest", Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))})
	}
	_, err := db.Submit(ctx, pool, jobs...)
	require.NoError(t, err)
	start(t, pool, fmt.Sprintf(`
stages:
  - queue: ingest
    handler: {go: %q}
    next: publish
    backoff: 10ms
    max_backoff: 10ms
  - queue: publish
    handler: {go: %q}
`, ingest, publish))
	require.Eventually(t, func() bool {
		var unfinished int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM baton.jobs
			WHERE state NOT IN ('succeeded', 'dead')`).Scan(&unfinished))
		return unfinished == 0 && count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'publish'") == 16
	}, 20*time.Second, 20*time.Millisecond)
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func TestReportingViewsAfterAPipelineRun(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	reportRun(t, pool)
	q := db.New(pool)

	summary, err := q.QueueSummary(ctx)
	require.NoError(t, err)
	byQueue := map[string]db.QueueSummaryRow{}
	for _, r := range summary {
		byQueue[r.Queue] = r
	}
	require.Equal(t, db.QueueSummaryRow{Queue: "ingest", Succeeded: 16, Dead: 4}, byQueue["ingest"])
	require.Equal(t, db.QueueSummaryRow{Queue: "publish", Succeeded: 16}, byQueue["publish"])

	latency, err := q.ReportStageLatency(ctx, "")
	require.NoError(t, err)
	require.Len(t, latency, 2)
	for _, r := range latency {
		require.Equal(t, map[string]int64{"ingest": 20, "publish": 16}[r.Queue], r.Jobs, r.Queue)
		require.GreaterOrEqual(t, r.WaitP50, 0.0)
		require.LessOrEqual(t, r.WaitP50, r.WaitP95)
		require.LessOrEqual(t, r.WaitP95, r.WaitP99)
		require.LessOrEqual(t, r.RunP50, r.RunP99)
		require.Less(t, r.RunP99, 20.0, "seconds, not milliseconds")
	}

	hourly, err := q.ReportThroughputHourly(ctx, "ingest")
	require.NoError(t, err)
	var total db.BatonThroughputHourly
	for _, r := range hourly {
		require.Equal(t, "ingest", r.Queue)
		require.Equal(t, r.Hour, r.Hour.Truncate(time.Hour))
		total.Succeeded, total.Retried, total.Dead = total.Succeeded+r.Succeeded, total.Retried+r.Retried, total.Dead+r.Dead
	}
	require.Equal(t, db.BatonThroughputHourly{Succeeded: 16, Retried: 2, Dead: 4}, total)

	failures, err := q.ReportFailures(ctx, "")
	require.NoError(t, err)
	require.Len(t, failures, 2)
	byError := map[string]db.BatonFailure{}
	for _, f := range failures {
		byError[*f.Error] = f
	}
	require.Equal(t, [3]int64{4, 4, 4}, [3]int64{byError["bad input"].Attempts, byError["bad input"].Jobs, byError["bad input"].Dead})
	require.Equal(t, [3]int64{2, 2, 0}, [3]int64{byError["flaky"].Attempts, byError["flaky"].Jobs, byError["flaky"].Dead})
	require.Contains(t, []int{5, 10, 15, 20}, payloadN(t, pool, byError["bad input"].LastJobID))
	require.False(t, byError["flaky"].LastSeen.Before(byError["flaky"].FirstSeen))

	lineage, err := q.ReportPipelineLineage(ctx, "")
	require.NoError(t, err)
	require.Len(t, lineage, 20+16)
	hops := map[int64][]db.BatonPipelineLineage{}
	for _, l := range lineage {
		hops[l.RootID] = append(hops[l.RootID], l)
	}
	require.Len(t, hops, 20)
	for root, h := range hops {
		require.Equal(t, root, h[0].JobID)
		require.Equal(t, "ingest", h[0].Queue)
		if n := payloadN(t, pool, root); n%5 == 0 {
			require.Len(t, h, 1, "a dead job hands nothing off")
			require.Equal(t, db.BatonJobStateDead, h[0].State)
			continue
		}
		require.Len(t, h, 2)
		require.Equal(t, []any{int32(1), "publish", root, db.BatonJobStateSucceeded},
			[]any{h[1].Depth, h[1].Queue, *h[1].ParentID, h[1].State})
	}
	// --queue publish selects the journeys through publish, root hop included.
	through, err := q.ReportPipelineLineage(ctx, "publish")
	require.NoError(t, err)
	require.Len(t, through, 2*16)

	stuck, err := q.ReportStuckJobs(ctx, "")
	require.NoError(t, err)
	require.Empty(t, stuck)

	// A window that starts later shows nothing.
	err = db.WithTx(ctx, pool, func(q *db.Queries) error {
		require.NoError(t, q.ReportSince(ctx, time.Now().Add(time.Hour).Format(time.RFC3339)))
		later, err := q.ReportStageLatency(ctx, "")
		require.Empty(t, later)
		return err
	})
	require.NoError(t, err)
}

func payloadN(t *testing.T, pool *pgxpool.Pool, id int64) int {
	return count(t, pool, "SELECT (payload->>'n')::int FROM baton.jobs WHERE id = $1", id)
}

func TestStuckJobsShowsExpiredLeasesAndUnclaimedJobs(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
		INSERT INTO baton.jobs (queue, state, payload, run_at) VALUES
			('nobody', 'available', '{}', now() - interval '5 minutes'),
			('nobody', 'available', '{}', now());
		INSERT INTO baton.jobs (queue, state, payload, attempts, lease_token, lease_expires_at, leased_by, started_at) VALUES
			('busy', 'running', '{}', 1, 1, now() - interval '10 seconds', 'gone-worker', now() - interval '40 seconds'),
			('busy', 'running', '{}', 1, 1, now() + interval '30 seconds', 'live-worker', now())`)
	require.NoError(t, err)
	stuck, err := db.New(pool).ReportStuckJobs(ctx, "")
	require.NoError(t, err)
	require.Len(t, stuck, 2)
	reasons := map[string]db.BatonStuckJob{}
	for _, s := range stuck {
		reasons[s.Reason] = s
	}
	require.Equal(t, "nobody", reasons["not claimed"].Queue)
	require.InDelta(t, 300, reasons["not claimed"].OverdueSeconds, 30)
	require.Equal(t, "gone-worker", *reasons["lease expired"].LeasedBy)
	require.InDelta(t, 10, reasons["lease expired"].OverdueSeconds, 30)
}

// The counters are exact through every kind of write, including SQL run by
// hand, and queue_summary reads no finished job to produce them.
func TestQueueSummaryCountsWithoutScanningHistory(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
		INSERT INTO baton.queues (name) VALUES ('big');
		INSERT INTO baton.jobs (queue, state, payload, finished_at)
		SELECT 'big', 'succeeded', '{}', now() FROM generate_series(1, 200000);
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'big', 'available', '{}' FROM generate_series(1, 50);
		UPDATE baton.jobs SET state = 'dead' WHERE id IN (SELECT id FROM baton.jobs WHERE state = 'succeeded' LIMIT 7);
		DELETE FROM baton.jobs WHERE id IN (SELECT id FROM baton.jobs WHERE state = 'succeeded' LIMIT 3);
		ANALYZE baton.jobs`)
	require.NoError(t, err)
	q := db.New(pool)
	check := func() {
		t.Helper()
		sum, err := q.QueueSummary(ctx)
		require.NoError(t, err)
		require.Len(t, sum, 1)
		require.Equal(t, []int64{200000 - 7 - 3, 7, 50}, []int64{sum[0].Succeeded, sum[0].Dead, sum[0].Available})
	}
	check()
	n, err := q.JobCountsFold(ctx)
	require.NoError(t, err)
	require.Positive(t, n)
	check()
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.job_count_deltas"))

	rows, err := pool.Query(ctx, "EXPLAIN SELECT * FROM baton.queue_summary")
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	plan := strings.Join(lines, "\n")
	// Jobs are read only through indexes that leave out succeeded jobs, the
	// bulk of history: the claim index, or the listing index (migration 6),
	// whichever the planner prefers.
	reads := 0
	for _, l := range lines {
		if strings.Contains(l, " on jobs ") {
			reads++
			if !strings.Contains(l, "jobs_claim_idx") && !strings.Contains(l, "jobs_queue_state_idx") {
				t.Fatalf("queue_summary reads jobs other than through an index without history:\n%s", plan)
			}
		}
	}
	require.Positive(t, reads, plan)
}
