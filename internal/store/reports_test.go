package store_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// reportViews are the views baton report prints.
var reportViews = []string{"queue_summary", "backlog_by_priority", "stage_latency", "throughput_hourly", "stage_errors",
	"failures", "attempts_per_job", "stuck_jobs", "pipeline_lineage", "slowest_journeys", "worker_activity", "table_health", "periodic", "groups"}

// The documented reporting role reads the views and nothing else.
func TestReaderRoleReadsOnlyTheViews(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	ctx := context.Background()
	script, err := os.ReadFile("../../docs/reader-role.sql")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, string(script))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "INSERT INTO baton.queues (name) VALUES ('a')")
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, dbtest.LoginAs(t, pool, u, "baton_reader"))
	require.NoError(t, err)
	defer conn.Close(ctx)

	for _, view := range append(reportViews, "job_history", "attempts") {
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

// Every report reads a long history through indexes only, so that what it
// costs follows its window, not the table: no view reads jobs or job_events
// sequentially. (scripts/report-plans.sh shows the plans and times at 1M
// and 10M jobs; docs/reports.md has them.)
func TestReportsReadHistoryThroughIndexes(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	dbtest.History(t, pool, 100_000, 2_000)
	for _, view := range append(reportViews, "attempts WHERE ended_at > now() - interval '1 hour'") {
		var plan string
		require.NoError(t, pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) SELECT * FROM baton."+view).Scan(&plan))
		var nodes []struct{ Plan planNode }
		require.NoError(t, json.Unmarshal([]byte(plan), &nodes))
		for _, n := range nodes[0].Plan.all() {
			if n.Relation == "jobs" || n.Relation == "job_events" {
				require.NotEqual(t, "Seq Scan", n.Type, "%s reads %s sequentially:\n%s", view, n.Relation, plan)
			}
		}
	}
}

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	Type     string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Plans    []planNode `json:"Plans"`
}

func (n planNode) all() []planNode {
	out := []planNode{n}
	for _, c := range n.Plans {
		out = append(out, c.all()...)
	}
	return out
}
