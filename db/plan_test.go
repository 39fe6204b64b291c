package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
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
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	require.NoError(t, err)
	_, err = conn.Conn().Prepare(ctx, "claim", db.JobClaimSQL)
	require.NoError(t, err)
	rows, err := conn.Query(ctx, "EXPLAIN EXECUTE claim('a', 100, 3, 30000, 'w')")
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	text := strings.Join(plan, "\n")
	require.Contains(t, text, "jobs_claim_idx", text)
	require.Contains(t, text, "jobs_pkey", text)
	require.NotContains(t, text, "Seq Scan on jobs", text)
}
