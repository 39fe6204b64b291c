package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// A submit is answered from the insert itself, in the transaction that
// creates the job: no read follows the commit. Before, the 201 was built by
// reading the job back in separate queries, and when that read failed (it
// did through PgBouncer) the client got a 500 for a job that existed; a
// client without an Idempotency-Key that retried then created a duplicate.
// Here the API connects as a role that may submit but may not read a job
// back (only the columns the insert returns), so any such read fails.
func TestSubmitIsAnsweredWithoutReadingAfterTheCommit(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	ctx := context.Background()
	role := fmt.Sprintf("submit_only_%d", time.Now().UnixNano())
	for _, sql := range []string{
		"CREATE ROLE " + role,
		"GRANT USAGE ON SCHEMA baton TO " + role,
		"GRANT INSERT ON baton.jobs, baton.job_events, baton.queues, baton.job_count_deltas, baton.idempotency_keys, baton.job_tags TO " + role,
		"GRANT SELECT (id, state, run_at, created_at, tags) ON baton.jobs TO " + role,
		"GRANT SELECT, UPDATE ON baton.queues, baton.idempotency_keys TO " + role,
	} {
		_, err := pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, "DROP OWNED BY "+role)
		_, _ = pool.Exec(ctx, "DROP ROLE "+role)
	})
	limited, err := store.Connect(ctx, store.ConnectConfig{URL: dbtest.LoginAs(t, pool, u, role), AppName: "baton-test", MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(limited.Close)
	srv := httptest.NewServer(api.New(limited, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	router, err := gorillamux.NewRouter(spec)
	require.NoError(t, err)
	c := &client{t: t, srv: srv, router: router}

	r := c.do("POST", "/v1/queues/a/jobs", `{"payload": {"n": 1}, "priority": 3}`)
	require.Equal(t, 201, r.status, "%s", r.body)
	job := r.json(t)
	id := int64(job["id"].(float64))
	require.Equal(t, fmt.Sprintf("/v1/jobs/%d", id), r.header.Get("Location"))
	require.Equal(t, "available", job["state"])
	require.Equal(t, map[string]any{"n": float64(1)}, job["payload"])
	require.Equal(t, float64(3), job["priority"])
	require.Len(t, job["history"], 1)

	r = c.do("POST", "/v1/queues/a/jobs", `{"payload": 2, "delay": "1h"}`, "Idempotency-Key", "k-1")
	require.Equal(t, 201, r.status, "%s", r.body)
	require.Equal(t, "scheduled", r.json(t)["state"])

	r = c.do("POST", "/v1/queues/a/jobs/batch", `{"jobs": [{"payload": 3}, {"payload": 4}]}`)
	require.Equal(t, 201, r.status, "%s", r.body)

	// The answers match what was stored.
	st, err := store.Status(ctx, pool, id)
	require.NoError(t, err)
	require.Equal(t, job["created_at"], st.CreatedAt.Format(time.RFC3339Nano))
	require.Equal(t, job["run_at"], st.RunAt.Format(time.RFC3339Nano))
	rows, err := pool.Query(ctx, "SELECT payload::text FROM baton.jobs ORDER BY id")
	require.NoError(t, err)
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, `{"n": 1} | 2 | 3 | 4`, strings.Join(payloads, " | "), "each job once")
}
