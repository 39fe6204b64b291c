package maintenance_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/testenv"
)

// A session of the reporting role cannot hold a transaction past its limits,
// whatever it sets for itself: PostgreSQL 15 lets it lift its own timeouts
// (and has no transaction_timeout), so maintenance ends it. Before, a reader
// could set statement_timeout = 0, turn read-only off, create temporary
// tables and keep a transaction open for good, holding back vacuum.
func TestAReaderCannotHoldATransactionPastItsLimits(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	ctx := context.Background()
	script, err := os.ReadFile("../../docs/reader-role.sql")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, string(script)+"; INSERT INTO baton.queues (name) VALUES ('a')")
	require.NoError(t, err)
	readerURL := dbtest.LoginAs(t, pool, u, "baton_reader")
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, readerURL)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close(context.Background()) })
		for _, set := range []string{"SET statement_timeout = 0", "SET idle_in_transaction_session_timeout = 0",
			"SET default_transaction_read_only = off"} {
			_, err := c.Exec(ctx, set)
			require.NoError(t, err, "a session may change its own %s", set)
		}
		return c
	}

	// No temporary tables or functions, whatever the session sets.
	scratch := connect()
	_, err = scratch.Exec(ctx, "CREATE TEMP TABLE scratch (x int)")
	require.ErrorContains(t, err, "permission denied")
	_, err = scratch.Exec(ctx, "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
	require.ErrorContains(t, err, "permission denied")
	var tempFileLimit string
	require.NoError(t, scratch.QueryRow(ctx, "SHOW temp_file_limit").Scan(&tempFileLimit))
	require.Equal(t, "1GB", tempFileLimit)
	_, err = scratch.Exec(ctx, "SET temp_file_limit = -1")
	require.ErrorContains(t, err, "permission denied")

	idle := connect() // idle in a transaction
	_, err = idle.Exec(ctx, "BEGIN; SELECT * FROM baton.queue_summary")
	require.NoError(t, err)
	long := connect() // one statement that runs on
	slept := make(chan error, 1)
	go func() { _, err := long.Exec(ctx, "SELECT pg_sleep(60) FROM baton.queue_summary"); slept <- err }()

	var logs testenv.Buffer
	mctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		maintenance.Run(mctx, pool, 20*time.Millisecond, maintenance.Retention{},
			maintenance.ReaderLimits{IdleInTransaction: 300 * time.Millisecond, Transaction: 2 * time.Second},
			slog.New(slog.NewTextHandler(&logs, nil)))
	})
	defer wg.Wait()
	defer stop()

	select {
	case err := <-slept:
		require.ErrorContains(t, err, "terminating connection")
	case <-time.After(time.Minute):
		t.Fatal("the long statement was not ended")
	}
	_, err = idle.Exec(ctx, "SELECT 1")
	require.Error(t, err, "the session idle in its transaction was ended")
	require.Contains(t, logs.String(), "ended a baton_reader session that held a transaction past its limit")
	_, err = scratch.Exec(ctx, "SELECT 1")
	require.NoError(t, err, "a session with no transaction open is left alone")
}
