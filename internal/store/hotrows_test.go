package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// The worker's batch scans read what sqlc's functions read: the same jobs in
// two queues, one claimed and completed each way, give the same rows but for
// their ids, queues and times.
func TestTheBatchScansReadWhatSqlcsDo(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	pri, tp := int16(7), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, queue := range []string{"a", "b"} {
		submit(t, pool, store.NewJob{Queue: queue, Priority: pri, TraceParent: tp, Tags: []string{"t1"}, Group: "g", Timeout: time.Second}, store.NewJob{Queue: queue})
	}
	p := store.JobClaimParams{MaxJobs: 10, LeaseMs: 30000, WorkerID: "test", MaxAttempts: 5}
	p.QueueName = "a"
	generated, err := q.JobClaim(ctx, p)
	require.NoError(t, err)
	p.QueueName = "b"
	batch, err := q.JobClaimBatch(ctx, p)
	require.NoError(t, err)
	require.Len(t, generated, 2)
	require.Len(t, batch, 2)
	same := func(r store.JobClaimRow) store.JobClaimRow {
		r.ID, r.Queue, r.RunAt, r.CreatedAt, r.StartedAt = 0, "", time.Time{}, time.Time{}, time.Time{}
		return r
	}
	for i := range generated {
		require.Equal(t, same(generated[i]), same(batch[i]))
	}

	complete := func(rows []store.JobClaimRow, next string, f func(context.Context, store.JobCompleteManyParams) ([]store.JobCompleteManyRow, error)) []store.JobCompleteManyRow {
		var p store.JobCompleteManyParams
		for _, r := range rows {
			p.Ids, p.LeaseTokens = append(p.Ids, r.ID), append(p.LeaseTokens, r.LeaseToken)
			p.Results, p.NextQueues = append(p.Results, `{"ok":1}`), append(p.NextQueues, next)
			p.TraceParents, p.Direct, p.RunUs = append(p.TraceParents, ""), append(p.Direct, false), append(p.RunUs, 1000)
		}
		p.WorkerID = "test"
		out, err := f(ctx, p)
		require.NoError(t, err)
		require.Len(t, out, len(rows))
		for i := range out {
			out[i].ID, out[i].NextID, out[i].NextCreatedAt = 0, 0, time.Time{}
		}
		return out
	}
	require.Equal(t, complete(generated, "c", q.JobCompleteMany), complete(batch, "d", q.JobCompleteManyBatch))
	none, err := q.JobClaimBatch(ctx, store.JobClaimParams{QueueName: "nothing", MaxJobs: 1000, LeaseMs: 30000, WorkerID: "test", MaxAttempts: 5})
	require.NoError(t, err)
	require.Empty(t, none)
}

// The claim and the completion run with the server's generic plan, in a
// setting that ends with their statement: on one session, seven claims and
// completions are planned once each and never again (pg_prepared_statements
// counts the plans of the session's statements; left to choose, the server
// made custom plans), and the session's plan_cache_mode and jit are still
// its own.
func TestTheHotStatementsRunWithGenericPlans(t *testing.T) {
	t.Parallel()
	_, url := dbtest.NewWithURL(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 1 // one session: the statements counted are the ones run
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	q := store.New(pool)
	for range 7 {
		submit(t, pool, store.NewJob{Queue: "a"}, store.NewJob{Queue: "a"})
		rows, err := q.JobClaimBatch(ctx, store.JobClaimParams{QueueName: "a", MaxJobs: 10, LeaseMs: 30000, WorkerID: "test", MaxAttempts: 5})
		require.NoError(t, err)
		require.Len(t, rows, 2)
		var p store.JobCompleteManyParams
		for _, r := range rows {
			p.Ids, p.LeaseTokens = append(p.Ids, r.ID), append(p.LeaseTokens, r.LeaseToken)
			p.Results, p.NextQueues = append(p.Results, `{}`), append(p.NextQueues, "b")
			p.TraceParents, p.Direct, p.RunUs = append(p.TraceParents, ""), append(p.Direct, false), append(p.RunUs, 1)
		}
		p.WorkerID = "test"
		done, err := q.JobCompleteManyBatch(ctx, p)
		require.NoError(t, err)
		require.Len(t, done, 2)
	}
	var custom, generic int
	require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(sum(custom_plans), 0), coalesce(sum(generic_plans), 0)
		FROM pg_prepared_statements
		WHERE (statement LIKE '%ahead AS MATERIALIZED%' OR statement LIKE '%input AS MATERIALIZED%') AND statement NOT LIKE '%pg_prepared_statements%'`).Scan(&custom, &generic))
	require.Zero(t, custom, "custom plans")
	require.Equal(t, 14, generic, "executions with the generic plan")
	var mode, jit string
	require.NoError(t, pool.QueryRow(ctx, "SELECT current_setting('plan_cache_mode'), current_setting('jit')").Scan(&mode, &jit))
	require.Equal(t, []string{"auto", "on"}, []string{mode, jit}, "the session's own settings")
	var succeeded int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM baton.jobs WHERE queue = 'a' AND state = 'succeeded'").Scan(&succeeded))
	require.Equal(t, 14, succeeded, "every completion committed")
}
