package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/internal/dbtest"
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
	text := genericPlan(t, pool, db.JobClaimSQL, "'a', 100, 3, 30000, 'w'")
	require.Contains(t, text, "jobs_claim_idx", text)
	require.Contains(t, text, "jobs_pkey", text)
	require.NotContains(t, text, "Seq Scan on jobs", text)
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
	text := genericPlan(t, pool, db.JobPruneSQL, "86400000, 604800000, 604800000, 1000")
	require.Contains(t, text, "jobs_finished_idx", text)
	require.NotContains(t, text, "Seq Scan on jobs", text)
	require.NotContains(t, text, "Bitmap Heap Scan on jobs", text)
}

// genericPlan is the EXPLAIN of sql's generic plan, made the way a server
// with plan_cache_mode = force_generic_plan would, without the arguments.
func genericPlan(t *testing.T, pool *pgxpool.Pool, sql, args string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	require.NoError(t, err)
	_, err = conn.Conn().Prepare(ctx, "stmt", sql)
	require.NoError(t, err)
	rows, err := conn.Query(ctx, "EXPLAIN EXECUTE stmt("+args+")")
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(plan, "\n")
}
