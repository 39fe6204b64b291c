package dbtest

import (
	"context"
	_ "embed"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed history.sql
var historySQL string

// History fills pool's database with a long history made in SQL: old
// journeys a -> b finished 2 to 9 days ago (outside every report's default
// window), recent ones in the last hour, and a backlog of 1,000 jobs; then
// vacuums and analyzes, so that plans see the tables as they are.
func History(t testing.TB, pool *pgxpool.Pool, old, recent int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx) // the functions live in this session
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, historySQL); err != nil {
		t.Fatalf("defining the history functions: %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_temp.history($1, $2)", old, recent); err != nil {
		t.Fatalf("making history: %v", err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE baton.jobs, baton.job_events"); err != nil {
		t.Fatal(err)
	}
}
