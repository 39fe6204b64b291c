package db_test

import (
	"context"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// The documented reporting role reads the views and nothing else.
func TestReaderRoleReadsOnlyTheViews(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	ctx := context.Background()
	script, err := os.ReadFile("../docs/reader-role.sql")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, string(script))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "ALTER ROLE baton_reader LOGIN")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "INSERT INTO baton.queues (name) VALUES ('a')")
	require.NoError(t, err)

	reader, err := url.Parse(u)
	require.NoError(t, err)
	reader.User = url.User("baton_reader")
	conn, err := pgx.Connect(ctx, reader.String())
	require.NoError(t, err)
	defer conn.Close(ctx)

	for _, view := range []string{"queue_summary", "stage_latency", "throughput_hourly", "failures", "stuck_jobs", "pipeline_lineage", "table_health", "job_history"} {
		_, err := conn.Exec(ctx, "SELECT * FROM baton."+view)
		require.NoError(t, err, view)
	}
	var queues int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM baton.queue_summary").Scan(&queues))
	require.Equal(t, 1, queues)
	_, err = conn.Exec(ctx, "SET baton.since = '2026-01-01T00:00:00Z'")
	require.NoError(t, err, "the reader chooses the report window")

	for _, table := range []string{"jobs", "job_events", "idempotency_keys"} {
		_, err = conn.Exec(ctx, "SELECT * FROM baton."+table)
		require.ErrorContains(t, err, "permission denied", "payloads and results stay out of reach")
	}
	_, err = conn.Exec(ctx, "CREATE TEMP TABLE scratch (x int)")
	require.ErrorContains(t, err, "read-only transaction")
	var readOnly, timeout string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('default_transaction_read_only'), current_setting('statement_timeout')").Scan(&readOnly, &timeout))
	require.Equal(t, []string{"on", "30s"}, []string{readOnly, timeout})
}
