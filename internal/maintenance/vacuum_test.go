package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/maintenance"
)

// Claims step over the index entries of every job claimed since the last
// vacuum, and the server's autovacuum may be off (it is on the CI machine):
// maintenance vacuums a Baton table itself once its dead rows pass a share
// of its rows, and leaves alone the tables that do not need it.
func TestVacuumCleansTablesWithManyDeadRows(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	// Claims, in bulk: 30,000 jobs become running, leaving 30,000 dead rows.
	for _, sql := range []string{
		"ALTER TABLE baton.jobs SET (autovacuum_enabled = false)",
		"INSERT INTO baton.queues (name) VALUES ('a')",
		"INSERT INTO baton.jobs (queue, state, payload) SELECT 'a', 'available', '{}' FROM generate_series(1, 30000)",
		"UPDATE baton.jobs SET state = 'running'",
		"SELECT pg_stat_force_next_flush()", // this backend's counts reach the statistics
		"SELECT 1",                          // at the end of this statement
	} {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err)
	}
	dead := func() (n int64) {
		require.NoError(t, pool.QueryRow(ctx, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'baton.jobs'::regclass").Scan(&n))
		return n
	}
	require.GreaterOrEqual(t, dead(), int64(30000), "the statistics count the claimed jobs' old row versions")

	vacuumed, err := maintenance.Vacuum(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, []string{"jobs"}, vacuumed, "only the table past its share of dead rows")
	require.Eventually(t, func() bool { return dead() == 0 }, 10*time.Second, 20*time.Millisecond)

	vacuumed, err = maintenance.Vacuum(ctx, pool)
	require.NoError(t, err)
	require.Empty(t, vacuumed, "nothing left to vacuum")
}
