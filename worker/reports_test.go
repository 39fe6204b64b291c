package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// reportRun moves 20 jobs through ingest -> publish: every fifth fails for
// good ("bad input"), and jobs 7 and 14 fail once ("flaky") and then succeed.
// So ingest ends with 16 succeeded and 4 dead, publish with 16 succeeded.
func reportRun(b *bundle) {
	t, pool := b.t, b.pool
	t.Helper()
	ctx := context.Background()
	ingest := b.handle(byNumber(func(_ context.Context, n, attempt int) error {
		switch {
		case n%5 == 0:
			return worker.Permanent(errors.New("bad input"))
		case n%7 == 0 && attempt == 1:
			return errors.New("flaky")
		}
		return nil
	}))
	publish := b.handle(echo)
	_, err := store.Submit(ctx, pool, numbered("ingest", 20)...)
	require.NoError(t, err)
	b.start(fmt.Sprintf(`
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

// echo hands its payload on.
var echo = worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) { return j.Payload, nil })

// byNumber is a handler for numbered jobs: it fails a job with what fail
// returns for its number and attempt, or hands its payload on.
func byNumber(fail func(ctx context.Context, n, attempt int) error) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		var p struct{ N int }
		if err := json.Unmarshal(j.Payload, &p); err != nil {
			return nil, err
		}
		if err := fail(ctx, p.N, j.Attempt); err != nil {
			return nil, err
		}
		return j.Payload, nil
	})
}

// numbered is n jobs for queue with payloads {"n": 1} to {"n": n}.
func numbered(queue string, n int) []store.NewJob {
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: queue, Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i+1))}
	}
	return jobs
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func TestReportingViewsAfterAPipelineRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	ctx := context.Background()
	reportRun(b)
	q := store.New(pool)

	summary, err := q.QueueSummary(ctx, store.QueueSummaryParams{MaxQueues: 1000})
	require.NoError(t, err)
	byQueue := map[string]store.QueueSummaryRow{}
	for _, r := range summary {
		byQueue[r.Queue] = r
	}
	require.Equal(t, store.QueueSummaryRow{Queue: "ingest", Succeeded: 16, Dead: 4}, byQueue["ingest"])
	require.Equal(t, store.QueueSummaryRow{Queue: "publish", Succeeded: 16}, byQueue["publish"])

	latency, err := q.ReportStageLatency(ctx, "")
	require.NoError(t, err)
	require.Len(t, latency, 2)
	for _, r := range latency {
		// attempts: ingest's 20 first runs and 2 retries; publish's 16
		require.Equal(t, map[string]int64{"ingest": 22, "publish": 16}[r.Queue], r.Attempts, r.Queue)
		require.GreaterOrEqual(t, r.WaitP50, 0.0)
		require.LessOrEqual(t, r.WaitP50, r.WaitP95)
		require.LessOrEqual(t, r.WaitP95, r.WaitP99)
		require.LessOrEqual(t, r.RunP50, r.RunP99)
		require.Less(t, r.RunP99, 20.0, "seconds, not milliseconds")
	}

	hourly, err := q.ReportThroughputHourly(ctx, "ingest")
	require.NoError(t, err)
	var total store.BatonThroughputHourly
	for _, r := range hourly {
		require.Equal(t, "ingest", r.Queue)
		require.Equal(t, r.Hour, r.Hour.Truncate(time.Hour))
		total.Successes, total.Retries, total.Deaths = total.Successes+r.Successes, total.Retries+r.Retries, total.Deaths+r.Deaths
	}
	require.Equal(t, store.BatonThroughputHourly{Successes: 16, Retries: 2, Deaths: 4}, total)

	failures, err := q.ReportFailures(ctx, "")
	require.NoError(t, err)
	require.Len(t, failures, 2)
	byError := map[string]store.BatonFailure{}
	for _, f := range failures {
		byError[*f.Error] = f
	}
	require.Equal(t, [3]int64{4, 4, 4}, [3]int64{byError["bad input"].Attempts, byError["bad input"].Jobs, byError["bad input"].Deaths})
	require.Equal(t, [3]int64{2, 2, 0}, [3]int64{byError["flaky"].Attempts, byError["flaky"].Jobs, byError["flaky"].Deaths})
	require.Contains(t, []int{5, 10, 15, 20}, payloadN(t, pool, byError["bad input"].LastJobID))
	require.False(t, byError["flaky"].LastSeen.Before(byError["flaky"].FirstSeen))

	lineage, err := q.ReportPipelineLineage(ctx, "")
	require.NoError(t, err)
	require.Len(t, lineage, 20+16)
	hops := map[int64][]store.BatonPipelineLineage{}
	for _, l := range lineage {
		hops[l.RootID] = append(hops[l.RootID], l)
	}
	require.Len(t, hops, 20)
	for root, h := range hops {
		require.Equal(t, root, h[0].JobID)
		require.Equal(t, "ingest", h[0].Queue)
		if n := payloadN(t, pool, root); n%5 == 0 {
			require.Len(t, h, 1, "a dead job hands nothing off")
			require.Equal(t, store.BatonJobStateDead, h[0].State)
			continue
		}
		require.Len(t, h, 2)
		require.Equal(t, []any{int32(1), "publish", root, store.BatonJobStateSucceeded},
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
	err = store.WithTx(ctx, pool, func(q *store.Queries) error {
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
	stuck, err := store.New(pool).ReportStuckJobs(ctx, "")
	require.NoError(t, err)
	require.Len(t, stuck, 2)
	reasons := map[string]store.BatonStuckJob{}
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
	q := store.New(pool)
	check := func() {
		t.Helper()
		sum, err := q.QueueSummary(ctx, store.QueueSummaryParams{MaxQueues: 1000})
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

// historyRow is one entry of baton.job_history with its job's queue: the
// ground truth every report is checked against.
type historyRow struct {
	JobID      int64
	Queue      string
	From       *store.JobState
	To         store.JobState
	Worker     *string
	Error      *string
	RunSeconds *float64
}

// Every report agrees with the history rows, and says in its column names
// what it counts. Twelve jobs go through ingest -> publish: eight succeed,
// two fail once first, one fails for good and is re-driven to fail again
// (so it is one dead job and two deaths), one is canceled while it runs,
// and a job in a queue no worker serves is canceled while it waits.
func TestReportsAgreeWithTheHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	ctx := context.Background()
	ingest := b.handle(byNumber(func(ctx context.Context, n, attempt int) error {
		switch {
		case (n == 9 || n == 10) && attempt == 1:
			return errors.New("flaky")
		case n == 11:
			return worker.Permanent(errors.New("bad input"))
		case n == 12:
			<-ctx.Done() // until canceled
			return ctx.Err()
		}
		return nil
	}))
	publish := b.handle(echo)
	ids, err := store.Submit(ctx, pool, append(numbered("ingest", 12), store.NewJob{Queue: "idle", Payload: json.RawMessage(`{}`)})...)
	require.NoError(t, err)
	b.start(fmt.Sprintf(`
stages:
  - queue: ingest
    handler: {go: %q}
    next: publish
    lease: 1s
    backoff: 10ms
    max_backoff: 10ms
  - queue: publish
    handler: {go: %q}
`, ingest, publish))
	require.NoError(t, store.Cancel(ctx, pool, ids[12]))
	b.waitState(ids[11], store.BatonJobStateRunning)
	require.NoError(t, store.Cancel(ctx, pool, ids[11]))
	b.waitState(ids[10], store.BatonJobStateDead)
	require.NoError(t, store.Retry(ctx, pool, ids[10]))
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM baton.job_events WHERE to_state = 'dead'`) == 2 &&
			count(t, pool, `SELECT count(*) FROM baton.jobs WHERE queue = 'publish' AND state = 'succeeded'`) == 10
	}, 20*time.Second, 10*time.Millisecond)

	rows, err := pool.Query(ctx, `SELECT h.job_id, j.queue, h.from_state, h.to_state, h.worker, h.error, h.run_seconds
		FROM baton.job_history h JOIN baton.jobs j ON j.id = h.job_id ORDER BY h.job_id, h.seq`)
	require.NoError(t, err)
	history, err := pgx.CollectRows(rows, pgx.RowToStructByPos[historyRow])
	require.NoError(t, err)
	from := func(h historyRow, states ...store.JobState) bool {
		return h.From != nil && slices.Contains(states, *h.From)
	}
	returned := func(h historyRow) bool { return from(h, "running") && h.RunSeconds != nil } // a handler outcome
	type tally map[string]int64
	countBy := func(key func(historyRow) string, keep func(historyRow) bool) tally {
		out := tally{}
		for _, h := range history {
			if keep(h) {
				out[key(h)]++
			}
		}
		return out
	}
	byQueue := func(h historyRow) string { return h.Queue }
	to := func(s store.JobState) func(historyRow) bool { return func(h historyRow) bool { return h.To == s } }
	q := store.New(pool)

	// queue_summary: jobs by their current state.
	var current []struct {
		Queue string
		State store.JobState
		N     int64
	}
	rows, err = pool.Query(ctx, `SELECT queue, state, count(*) FROM baton.jobs GROUP BY 1, 2`)
	require.NoError(t, err)
	current, err = pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Queue string
		State store.JobState
		N     int64
	}])
	require.NoError(t, err)
	summary, err := q.QueueSummary(ctx, store.QueueSummaryParams{MaxQueues: 1000})
	require.NoError(t, err)
	require.Len(t, summary, 3)
	for _, s := range summary {
		want := map[store.JobState]int64{}
		for _, c := range current {
			if c.Queue == s.Queue {
				want[c.State] = c.N
			}
		}
		require.Equal(t, want[store.BatonJobStateSucceeded], s.Succeeded, s.Queue)
		require.Equal(t, want[store.BatonJobStateDead], s.Dead, s.Queue)
		require.Equal(t, want[store.BatonJobStateCanceled], s.Canceled, s.Queue)
		require.Zero(t, s.Available+s.Running+s.Retrying+s.Scheduled, s.Queue)
	}
	require.Equal(t, []int64{10, 1, 1}, []int64{summary[1].Succeeded, summary[1].Dead, summary[1].Canceled}, "ingest, by state")

	// throughput_hourly: events.
	hourly, err := q.ReportThroughputHourly(ctx, "")
	require.NoError(t, err)
	got := map[string]tally{}
	for _, r := range hourly {
		if got[r.Queue] == nil {
			got[r.Queue] = tally{}
		}
		for k, v := range map[string]int64{"successes": r.Successes, "retries": r.Retries, "deaths": r.Deaths,
			"cancels": r.Cancels, "interruptions": r.Interruptions, "redrives": r.Redrives} {
			got[r.Queue][k] += v
		}
	}
	want := map[string]tally{}
	for name, keep := range map[string]func(historyRow) bool{
		"successes": to("succeeded"), "retries": to("retrying"), "deaths": to("dead"), "cancels": to("canceled"),
		"interruptions": func(h historyRow) bool { return h.To == "available" && from(h, "running") },
		"redrives":      func(h historyRow) bool { return h.To == "available" && from(h, "dead", "canceled") },
	} {
		for queue, n := range countBy(byQueue, keep) {
			if want[queue] == nil {
				want[queue] = tally{}
			}
			want[queue][name] = n
		}
	}
	for queue, w := range want {
		for k, v := range w {
			require.Equal(t, v, got[queue][k], "throughput_hourly %s %s", queue, k)
		}
	}
	require.Equal(t, tally{"successes": 10, "retries": 2, "deaths": 2, "cancels": 1, "interruptions": 0, "redrives": 1}, got["ingest"])

	// failures: history rows with an error.
	failures, err := q.ReportFailures(ctx, "")
	require.NoError(t, err)
	withError := countBy(func(h historyRow) string { return h.Queue + "|" + *h.Error }, func(h historyRow) bool { return h.Error != nil })
	deaths := countBy(func(h historyRow) string { return h.Queue + "|" + *h.Error }, func(h historyRow) bool { return h.Error != nil && h.To == "dead" })
	require.Len(t, failures, len(withError))
	var sumDeaths int64
	for _, f := range failures {
		key := f.Queue + "|" + *f.Error
		require.Equal(t, withError[key], f.Attempts, key)
		require.Equal(t, deaths[key], f.Deaths, key)
		sumDeaths += f.Deaths
	}
	require.Equal(t, got["ingest"]["deaths"], sumDeaths, "failures and throughput_hourly count the same deaths")

	// stage_latency and stage_errors: attempts whose handler returned.
	attempts := countBy(byQueue, returned)
	successes := countBy(byQueue, func(h historyRow) bool { return returned(h) && h.To == "succeeded" })
	failed := countBy(byQueue, func(h historyRow) bool { return returned(h) && h.To != "succeeded" })
	require.Equal(t, tally{"ingest": 8 + 2*2 + 2, "publish": 10}, attempts)
	latency, err := q.ReportStageLatency(ctx, "")
	require.NoError(t, err)
	require.Len(t, latency, 2)
	for _, l := range latency {
		require.Equal(t, attempts[l.Queue], l.Attempts, l.Queue)
		require.Equal(t, successes[l.Queue], l.Successes, l.Queue)
	}
	stageErrors, err := q.ReportStageErrors(ctx, "")
	require.NoError(t, err)
	require.Len(t, stageErrors, 2)
	for _, e := range stageErrors {
		require.Equal(t, attempts[e.Queue], e.Attempts, e.Queue)
		require.Equal(t, failed[e.Queue], e.FailedAttempts, e.Queue)
		require.InDelta(t, float64(failed[e.Queue])/float64(attempts[e.Queue]), e.ErrorRate, 1e-9, e.Queue)
		require.Zero(t, e.LostLeases)
	}
	require.JSONEq(t, `[{"error": "bad input", "attempts": 2}, {"error": "flaky", "attempts": 2}]`, string(stageErrors[0].TopErrors))

	// worker_activity: the history's worker of each attempt.
	activity, err := q.ReportWorkerActivity(ctx)
	require.NoError(t, err)
	require.Len(t, activity, 1)
	a := activity[0]
	jobsRun := map[int64]bool{}
	for _, h := range history {
		if from(h, "running") {
			jobsRun[h.JobID] = true
		}
	}
	require.Equal(t, "test-worker", *a.Worker)
	require.Equal(t, []int64{int64(len(jobsRun)), attempts["ingest"] + attempts["publish"], successes["ingest"] + successes["publish"],
		failed["ingest"], 1, 0, 0}, []int64{a.Jobs, a.Attempts, a.Successes, a.FailedAttempts, a.Cancels, a.LostLeases, a.Releases})

	// attempts_per_job: finished jobs by their counted attempts (a re-drive
	// starts counting again).
	perJob, err := q.ReportAttemptsPerJob(ctx, "ingest")
	require.NoError(t, err)
	require.Equal(t, []store.BatonAttemptsPerJob{
		{Queue: "ingest", Attempts: 1, Jobs: 9, SucceededJobs: 8, DeadJobs: 1, Share: 9.0 / 11},
		{Queue: "ingest", Attempts: 2, Jobs: 2, SucceededJobs: 2, Share: 2.0 / 11},
	}, perJob)

	// slowest_journeys: one row per journey's end (a finished job that
	// handed nothing off), pipeline_lineage one per hop.
	journeys, err := q.ReportSlowestJourneys(ctx, "")
	require.NoError(t, err)
	require.Equal(t, 10+1+1+1, count(t, pool, `SELECT count(*) FROM baton.jobs j
		WHERE state IN ('succeeded', 'dead', 'canceled') AND NOT EXISTS (SELECT 1 FROM baton.jobs c WHERE c.parent_id = j.id)`))
	require.Len(t, journeys, 13)
	for _, j := range journeys {
		require.Equal(t, map[string]int64{"publish": 2, "ingest": 1, "idle": 1}[j.Queue], j.Hops, j.Queue)
		require.InDelta(t, j.FinishedAt.Sub(j.SubmittedAt).Seconds(), j.Seconds, 1e-9, "the server's epoch arithmetic and Go's round the last bit differently")
	}
	lineage, err := q.ReportPipelineLineage(ctx, "")
	require.NoError(t, err)
	require.Len(t, lineage, count(t, pool, `SELECT count(*) FROM baton.jobs`))

	backlog, err := q.ReportBacklogByPriority(ctx, "")
	require.NoError(t, err)
	require.Empty(t, backlog, "nothing waits")
}
