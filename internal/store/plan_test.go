package store_test

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// A server may be set to plan_cache_mode = force_generic_plan (some do, to
// save planning time): the claim's generic plan, made without knowing
// max_jobs, must still find jobs through the claim index and the primary key,
// never by scanning the table.
func TestClaimGenericPlanUsesTheIndexes(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('a');
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'a', 'available', '{}' FROM generate_series(1, 5000);
		ANALYZE baton.jobs`)
	require.NoError(t, err)
	for _, limit := range []string{"0", "5"} { // no global concurrency, and one: its count of running jobs
		for _, floor := range []string{"0, NULL", "0, now()"} { // none, and the worker's
			text := genericPlan(t, pool, store.JobClaimSQL, "false, 100, 'a', "+limit+", "+floor+", 3, 30000, 30000, 'w'")
			require.Regexp(t, `Index Scan using jobs_claim_idx on jobs j\S*  \(.*\n\s*Index Cond: \(\(queue = \$3\) AND \(ROW\(priority, run_at\) >= ROW\(`, text, "the floor starts the index scan")
			require.Contains(t, text, "jobs_pkey", text)
			require.Regexp(t, "jobs_queue_state_idx|jobs_running_idx", text, "the running jobs are counted from an index (running jobs are few: at most every replica's slots)")
			require.NotContains(t, text, "Seq Scan on jobs", text)
		}
	}
}

// While a transaction holds back the horizon, the claim index keeps the
// entries of every job claimed since, in front of the waiting jobs. A claim
// that starts at its floor (the run_at of the jobs claimed last) reads a few
// pages; one that reads from the front reads them all.
func TestAClaimFromItsFloorStepsOverTheJobsClaimedBefore(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	dbtest.HoldHorizon(t, pool)
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('a');
		INSERT INTO baton.jobs (queue, state, payload, run_at)
		SELECT 'a', 'available', '{}', now() - interval '1 hour' + g * interval '10 ms' FROM generate_series(1, 20000) g;
		UPDATE baton.jobs SET state = 'running' WHERE id <= 19900;
		ANALYZE baton.jobs`)
	require.NoError(t, err)
	pages := func(floor string) int {
		text := explainGeneric(t, pool, "EXPLAIN (ANALYZE, BUFFERS)", store.JobClaimSQL, "false, 10, 'a', 0, "+floor+", 3, 30000, 30000, 'w'")
		return pagesRead(t, text, `(?s)ROW\(priority, run_at\) >= ROW\(.*?`)
	}
	front := pages("0, NULL")
	var last string // the run_at of the last job claimed
	require.NoError(t, pool.QueryRow(ctx, "SELECT run_at::text FROM baton.jobs WHERE id = 19900").Scan(&last))
	floored := pages("0, '" + last + "'")
	t.Logf("claim index scan: %d pages from the front, %d from the floor", front, floored)
	require.Greater(t, front, 300, "from the front: every claimed job's entry and row version")
	require.Less(t, floored, 20, "from the floor")
}

// While a transaction holds back the horizon, jobs_running_idx keeps an
// entry for every job that ran since, and statistics taken while no job ran
// call it empty: a statement given the ids of its running jobs must look
// each up, neither hash them against a scan of the whole index (its first
// form: 30,000 pages a completion, three minutes into a held xid at 3,175
// jobs/s) nor compare every id with every job (its second: a million
// comparisons to complete a thousand jobs), under a custom plan or a
// generic one.
func TestStatementsOnRunningJobsLookThemUp(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	dbtest.HoldHorizon(t, pool)
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('a');
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'a', 'available', '{}' FROM generate_series(1, 40000);
		ANALYZE baton.jobs; -- taken while no job runs: jobs_running_idx is empty
		UPDATE baton.jobs SET state = 'running', attempts = 1, lease_token = 1, started_at = now(), lease_expires_at = now() + interval '1 hour';
		UPDATE baton.jobs SET state = 'succeeded', lease_expires_at = NULL WHERE id <= 30000`)
	require.NoError(t, err)
	var next int64 // the next running job
	require.NoError(t, pool.QueryRow(ctx, "SELECT min(id) FROM baton.jobs WHERE state = 'running'").Scan(&next))
	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		for _, n := range []int{10, 1000} {
			fill := func(v string) string { return fmt.Sprintf("array_fill(%s, ARRAY[%d])", v, n) }
			for _, c := range []struct{ name, sql, args, done string }{
				{"JobCompleteMany", store.JobCompleteManySQL, fill("'{}'::text") + ", " + fill("''::text") + ", " + fill("''::text") + ", " +
					fill("false") + ", " + fill("5::bigint") + ", 'w', false, false, 3, 30000", "state = 'succeeded'"},
				{"JobHeartbeat", store.JobHeartbeatSQL, "30000, 30000", "lease_expires_at < now() + interval '1 minute'"},
				{"JobNoteClaims", store.JobNoteClaimsSQL, fill("'capped'::text"),
					"EXISTS (SELECT 1 FROM baton.job_events e WHERE e.job_id = j.id AND e.note = 'capped')"},
				{"JobReleaseMany", store.JobReleaseManySQL, "'w'", "state = 'available'"},
			} {
				first := next
				ids, tokens := make([]string, n), make([]string, n)
				for i := range n {
					ids[i], tokens[i] = strconv.FormatInt(next, 10), "1"
					next++
				}
				args := "'{" + strings.Join(ids, ",") + "}', '{" + strings.Join(tokens, ",") + "}', " + c.args
				text := explainPlan(t, pool, mode, "EXPLAIN (ANALYZE, BUFFERS)", c.sql, args)
				pages := pagesRead(t, text, "")
				compared := 0
				for _, m := range regexp.MustCompile(`Rows Removed by Join Filter: (\d+)`).FindAllStringSubmatch(text, -1) {
					r, _ := strconv.Atoi(m[1])
					compared += r
				}
				var done int
				require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM baton.jobs j WHERE id BETWEEN $1 AND $2 AND "+c.done, first, next-1).Scan(&done))
				t.Logf("%s, %d jobs, %s: %d pages, %d rows removed by join filters", c.name, n, mode, pages, compared)
				require.Equal(t, n, done, "%s (%d jobs, %s) did its work", c.name, n, mode)
				assert.Less(t, pages, 40*n+200, "%s (%d jobs, %s) reads the running jobs it names, not every entry of jobs_running_idx", c.name, n, mode)
				assert.Less(t, compared, 10*n, "%s (%d jobs, %s) does not compare every id with every job", c.name, n, mode)
			}
		}
	}
}

// Retention runs every 10 s on a table that holds every finished job: its
// plan must read only the jobs past their cutoff, from jobs_finished_idx,
// whatever the table holds (its first shape scanned the whole table).
func TestPruneGenericPlanReadsOnlyWhatItDeletes(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('a'), ('b');
		INSERT INTO baton.jobs (queue, state, payload, finished_at)
		SELECT CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, 'succeeded', '{}', now() FROM generate_series(1, 20000) g;
		ANALYZE baton.jobs`)
	require.NoError(t, err)
	text := genericPlan(t, pool, store.JobPruneSQL, "86400000, 604800000, 604800000, 1000")
	require.Contains(t, text, "jobs_finished_idx", text)
	require.NotContains(t, text, "Seq Scan on jobs", text)
	require.NotContains(t, text, "Bitmap Heap Scan on jobs", text)
}

// Listing jobs, by queue, state, both or neither, reads a page's worth of
// index entries however many other jobs the table holds, under a generic
// plan too: the first form walked the primary key through 100,000 jobs of
// another queue to list a rare queue's.
func TestJobListReadsAPageWhateverTheTableHolds(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('big'), ('rare');
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'rare', 'succeeded', '{}' FROM generate_series(1, 10);
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'rare', 'dead', '{}' FROM generate_series(1, 4);
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'rare', 'running', '{}' FROM generate_series(1, 3);
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'big', 'dead', '{}' FROM generate_series(1, 5);
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'big', 'succeeded', '{}' FROM generate_series(1, 100000);
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'big', 'available', '{}' FROM generate_series(1, 2)`)
	require.NoError(t, err)
	_, err = store.New(pool).JobCountsFold(ctx)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "VACUUM ANALYZE baton.jobs")
	require.NoError(t, err)
	for _, c := range []struct {
		queue, state string // SQL literals
		want         int
	}{
		{"'rare'", "'succeeded'", 10},
		{"'rare'", "NULL", 10 + 4 + 3},
		{"'rare'", "'running'", 3},
		{"NULL", "'dead'", 4 + 5},
		{"NULL", "'running'", 3},
		{"NULL", "'succeeded'", 50},
		{"NULL", "NULL", 50},
		{"'big'", "NULL", 50},
		{"'big'", "'succeeded'", 50},
		{"'big'", "'dead'", 5},
		{"'big'", "'available'", 2},
	} {
		args := c.queue + ", " + c.state + ", 9223372036854775807, 50"
		plan := explainGeneric(t, pool, "EXPLAIN (ANALYZE, BUFFERS)", store.JobListSQL, args)
		require.Regexp(t, fmt.Sprintf(`^[^\n]*rows=%d loops=1\)`, c.want), plan, "JobList(%s)", args)
		require.Less(t, pagesRead(t, plan, ""), 200, "JobList(%s) reads a page, not the table:\n%s", args, plan)
	}
}

// JobList's branches, merged, list exactly what one filtered scan of the
// table would, page after page, for every filter: a queue with few
// succeeded jobs and one with many (each read its own way) included.
func TestJobListPagesMatchTheRows(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('a'), ('b'), ('many');
		INSERT INTO baton.jobs (queue, state, payload)
		SELECT (ARRAY['a', 'b', 'many'])[1 + g % 3],
		       (enum_range(NULL::baton.job_state))[1 + (g / 3) % 7], '{}'
		FROM generate_series(1, 700) g;
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'many', 'succeeded', '{}' FROM generate_series(1, 10000);
		INSERT INTO baton.jobs (queue, state, payload)
		SELECT (ARRAY['a', 'many'])[1 + g % 2], 'succeeded', '{}' FROM generate_series(1, 300) g`)
	require.NoError(t, err)
	q := store.New(pool)
	_, err = q.JobCountsFold(ctx)
	require.NoError(t, err)
	rows, err := pool.Query(ctx, "SELECT unnest(enum_range(NULL::baton.job_state))::text")
	require.NoError(t, err)
	all, err := pgx.CollectRows(rows, pgx.RowTo[store.JobState])
	require.NoError(t, err)
	states := []*store.JobState{nil}
	for _, s := range all {
		states = append(states, &s)
	}
	for _, queue := range []*string{nil, ptr("a"), ptr("b"), ptr("many"), ptr("none")} {
		for _, state := range states {
			var want []int64
			rows, err := pool.Query(ctx, `SELECT id FROM baton.jobs
				WHERE ($1::text IS NULL OR queue = $1) AND ($2::baton.job_state IS NULL OR state = $2)
				ORDER BY id DESC LIMIT 60`, queue, state)
			require.NoError(t, err)
			want, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			require.NoError(t, err)
			got := []int64{}
			before := int64(1<<63 - 1)
			for len(got) < 60 {
				page, err := q.JobList(ctx, store.JobListParams{Queue: queue, State: state, BeforeID: before, MaxJobs: 20})
				require.NoError(t, err)
				for _, j := range page {
					got = append(got, j.ID)
				}
				if len(page) < 20 {
					break
				}
				before = page[len(page)-1].ID
			}
			require.Equal(t, want, got, "queue %v, state %v", deref(queue), deref(state))
		}
	}
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// genericPlan is the EXPLAIN of sql's generic plan, made the way a server
// with plan_cache_mode = force_generic_plan would, without the arguments.
func genericPlan(t *testing.T, pool *pgxpool.Pool, sql, args string) string {
	t.Helper()
	return explainGeneric(t, pool, "EXPLAIN", sql, args)
}

// pagesRead is the pages (shared buffers hit and read) of the first node of
// an EXPLAIN (ANALYZE, BUFFERS) plan that after (a regexp) leads to.
func pagesRead(t *testing.T, plan, after string) int {
	t.Helper()
	m := regexp.MustCompile(after + `Buffers: shared hit=(\d+)(?: read=(\d+))?`).FindStringSubmatch(plan)
	require.NotNil(t, m, plan)
	hit, _ := strconv.Atoi(m[1])
	read, _ := strconv.Atoi(cmp.Or(m[2], "0"))
	return hit + read
}

// explainGeneric runs explain (EXPLAIN and its options) on sql's generic plan.
func explainGeneric(t *testing.T, pool *pgxpool.Pool, explain, sql, args string) string {
	t.Helper()
	return explainPlan(t, pool, "force_generic_plan", explain, sql, args)
}

// explainPlan runs explain on sql's plan under plan_cache_mode mode: its
// generic plan, or the custom plan a statement's first executions get.
func explainPlan(t *testing.T, pool *pgxpool.Pool, mode, explain, sql, args string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET plan_cache_mode = "+mode)
	require.NoError(t, err)
	_, err = conn.Conn().Prepare(ctx, "stmt", sql)
	require.NoError(t, err)
	defer func() { require.NoError(t, conn.Conn().Deallocate(ctx, "stmt")) }()
	rows, err := conn.Query(ctx, explain+" EXECUTE stmt("+args+")")
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(plan, "\n")
}
