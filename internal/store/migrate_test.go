package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/testenv"
)

// A migration that must wait for a lock held by a long transaction elsewhere
// (a report reading the jobs) gives up within its lock timeout, so writers
// queued behind it go on, and runs again until it gets the lock. Before, it
// waited for as long as the transaction lasted, and every submit with it.
func TestAMigrationBlockedByALongTransactionGivesUpAndRunsAgain(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	ctx := context.Background()
	m, err := store.Migrator(ctx, u)
	require.NoError(t, err)
	defer m.Close()
	latest, _, err := m.Version()
	require.NoError(t, err)
	require.NoError(t, m.Migrate(13)) // before migration 14, which alters baton.jobs

	reader, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = reader.Rollback(context.Background()) })
	_, err = reader.Exec(ctx, "SELECT count(*) FROM baton.jobs")
	require.NoError(t, err)

	var logs testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- store.Up(ctx, m, slog.New(slog.NewTextHandler(&logs, nil))) }()
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "could not take a lock in time") },
		time.Minute, 10*time.Millisecond)
	// Between its tries a job goes in (a plain insert needs no lock the
	// reader holds; the schema is a few migrations old, so by hand).
	_, err = pool.Exec(ctx, "INSERT INTO baton.jobs (queue, state, payload) VALUES ('a', 'available', '{}')")
	require.NoError(t, err)
	require.NoError(t, reader.Commit(ctx))
	require.NoError(t, <-done)
	v, dirty, err := m.Version()
	require.NoError(t, err)
	require.False(t, dirty)
	require.Equal(t, latest, v)
}

// ReadSchema says where the schema stands, and Check whether this binary
// runs against it: a failed migration and a database golang-migrate never
// touched (no version table) are not ready either.
func TestReadSchema(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	s, err := store.ReadSchema(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, s.Binary, s.Applied)
	require.NoError(t, s.Check())

	_, err = pool.Exec(ctx, "UPDATE baton_schema_migrations SET dirty = true")
	require.NoError(t, err)
	s, err = store.ReadSchema(ctx, pool)
	require.NoError(t, err)
	require.ErrorIs(t, s.Check(), store.ErrSchema)
	require.ErrorContains(t, s.Check(), "failed half-way (dirty)")
	require.True(t, s.Waitable())

	_, err = pool.Exec(ctx, "DROP TABLE baton_schema_migrations")
	require.NoError(t, err)
	s, err = store.ReadSchema(ctx, pool)
	require.NoError(t, err)
	require.Zero(t, s.Applied)
	require.ErrorContains(t, s.Check(), "no Baton schema yet")
}

// A DATABASE_URL that sizes the pool (pool_max_conns, as
// docs/operations.md suggests) also creates and migrates its database:
// before, the connections that are not a pool's sent the pool's parameter
// to the server, which refused it ("unrecognized configuration parameter").
func TestMigrateUpTakesAURLWithThePoolsParameters(t *testing.T) {
	t.Parallel()
	_, base := dbtest.NewWithURL(t)
	ctx := context.Background()
	u, err := url.Parse(base)
	require.NoError(t, err)
	name := fmt.Sprintf("baton_pool_params_%d", time.Now().UnixNano())
	u.Path = "/" + name
	q := u.Query()
	q.Set("pool_max_conns", "3")
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		admin := *u
		admin.Path, admin.RawQuery = "/postgres", ""
		if conn, err := pgx.Connect(context.Background(), admin.String()); err == nil {
			_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			_ = conn.Close(context.Background())
		}
	})

	require.NoError(t, store.MigrateUp(ctx, u.String()))
	pool, err := store.Connect(ctx, store.ConnectConfig{URL: u.String()})
	require.NoError(t, err)
	defer pool.Close()
	require.EqualValues(t, 3, pool.Config().MaxConns)
	var jobs int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM baton.jobs").Scan(&jobs), "migrated")
}
