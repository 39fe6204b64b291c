package maintenance_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/store"
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
	require.GreaterOrEqual(t, deadJobRows(t, pool), int64(30000), "the statistics count the claimed jobs' old row versions")

	vacuumed, err := maintenance.Vacuum(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, []string{"jobs"}, vacuumed, "only the table past its share of dead rows")
	require.Eventually(t, func() bool { return deadJobRows(t, pool) == 0 }, 10*time.Second, 20*time.Millisecond)

	vacuumed, err = maintenance.Vacuum(ctx, pool)
	require.NoError(t, err)
	require.Empty(t, vacuumed, "nothing left to vacuum")
}

// A vacuum cannot remove dead rows that a transaction somewhere may still
// see. While one holds back the horizon, a table its vacuum left due waits
// before the next (an interval, then twice as long), rather than being read
// through every interval for nothing; once the horizon passes what that
// vacuum had to leave, the wait ends, and the next vacuum cleans it.
func TestVacuumWaitsWhileTheHorizonIsHeld(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	release := dbtest.HoldHorizon(t, pool)
	claimInBulk(t, pool)
	waits := map[string]maintenance.VacuumWait{}
	vacuum := func(at time.Duration) []string {
		vacuumed, err := maintenance.VacuumDue(ctx, pool, waits, time.Second, time.Unix(0, 0).Add(at))
		require.NoError(t, err)
		return vacuumed
	}
	require.Eventually(t, func() bool { return len(vacuum(0)) == 1 }, 10*time.Second, 20*time.Millisecond,
		"the statistics count the dead rows, and the table is vacuumed")
	require.Empty(t, vacuum(500*time.Millisecond), "left due by a held transaction: it waits an interval")
	require.Equal(t, []string{"jobs"}, vacuum(time.Second), "then it is vacuumed again")
	require.Empty(t, vacuum(2500*time.Millisecond), "and waits twice as long")
	release()
	require.Equal(t, []string{"jobs"}, vacuum(2600*time.Millisecond), "the horizon moved: the wait is over")
	_, waiting := waits["jobs"]
	require.False(t, waiting, "that vacuum cleaned it")
	require.Less(t, deadJobRows(t, pool), int64(1000))
}

// The horizon is where the oldest transaction of the database holds it (or
// older: its snapshot's xmin counts the transactions of every database
// running when it began), and the next transaction ID when none does.
func TestVacuumHorizonIsTheOldestTransaction(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	q := store.New(pool)
	release := dbtest.HoldHorizon(t, pool)
	var held int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT min(backend_xid::text::bigint) FROM pg_stat_activity WHERE datname = current_database()").Scan(&held))
	for range 3 { // transactions after it move next_xid, not the horizon
		_, err := pool.Exec(ctx, "SELECT txid_current()")
		require.NoError(t, err)
	}
	h, err := q.VacuumHorizon(ctx)
	require.NoError(t, err)
	require.LessOrEqual(t, h.Horizon, held)
	require.Greater(t, h.NextXid, held+2)

	release()
	h, err = q.VacuumHorizon(ctx)
	require.NoError(t, err)
	require.Greater(t, h.Horizon, held, "it moved past the released transaction")
	require.LessOrEqual(t, h.Horizon, h.NextXid)
}

// A vacuum under way in another database does not hide a table of this one:
// databases made from one template (as the tests' are, or a restored dump)
// have the same table OIDs, and the progress view shows every database's
// vacuums. A cursor's pin on an index page holds the other vacuum in its
// index phase while this database's tables are listed.
func TestVacuumIsNotHeldBackByAnotherDatabasesVacuum(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	here, there := dbtest.New(t), dbtest.New(t)
	oid := func(pool *pgxpool.Pool) (o uint32) {
		require.NoError(t, pool.QueryRow(ctx, "SELECT 'baton.jobs'::regclass::oid").Scan(&o))
		return o
	}
	require.Equal(t, oid(here), oid(there), "one template, one OID")
	claimInBulk(t, here)
	// There, rows that a rolled-back insert left: dead to every snapshot,
	// so that its vacuum has index entries to delete whatever transactions
	// other tests hold open.
	_, err := there.Exec(ctx, `INSERT INTO baton.queues (name) VALUES ('a');
		INSERT INTO baton.jobs (queue, state, payload) SELECT 'a', 'available', '{}' FROM generate_series(1, 10)`)
	require.NoError(t, err)
	_, err = there.Exec(ctx, `BEGIN; INSERT INTO baton.jobs (queue, state, payload) SELECT 'a', 'available', '{}' FROM generate_series(1, 1000); ROLLBACK`)
	require.NoError(t, err)
	cursor, err := there.Begin(ctx)
	require.NoError(t, err)
	defer cursor.Rollback(ctx) //nolint:errcheck // ends the other vacuum's wait
	_, err = cursor.Exec(ctx, `SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexscan = off;
		DECLARE c CURSOR FOR SELECT id FROM baton.jobs ORDER BY id; FETCH 1 FROM c`) // an index-only scan keeps its leaf page pinned
	require.NoError(t, err)
	vacuumed := make(chan error, 1)
	go func() { _, err := there.Exec(ctx, "VACUUM baton.jobs"); vacuumed <- err }()
	underWay := func() (phase string) {
		err := there.QueryRow(ctx, "SELECT phase FROM pg_stat_progress_vacuum WHERE datname = current_database()").Scan(&phase)
		if !errors.Is(err, pgx.ErrNoRows) {
			require.NoError(t, err)
		}
		return phase
	}
	require.Eventually(t, func() bool { return underWay() == "vacuuming indexes" }, 10*time.Second, 10*time.Millisecond,
		"the other database's vacuum waits for the cursor's page")

	require.Eventually(t, func() bool {
		tables, err := store.New(here).TablesToVacuum(ctx, store.TablesToVacuumParams{MinDead: 20_000, DeadShare: 0.05})
		require.NoError(t, err)
		return slices.Contains(tables, "jobs")
	}, 10*time.Second, 20*time.Millisecond, "this database's jobs are due (once the statistics count them)")
	require.Equal(t, "vacuuming indexes", underWay(), "while the other vacuum was under way")
	require.NoError(t, cursor.Rollback(ctx))
	require.NoError(t, <-vacuumed)
}

// claimInBulk makes 30,000 jobs running in one statement, leaving as many
// dead row versions in baton.jobs, whose autovacuum it turns off.
func claimInBulk(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for _, sql := range []string{
		"ALTER TABLE baton.jobs SET (autovacuum_enabled = false)",
		"INSERT INTO baton.queues (name) VALUES ('a')",
		"INSERT INTO baton.jobs (queue, state, payload) SELECT 'a', 'available', '{}' FROM generate_series(1, 30000)",
		"UPDATE baton.jobs SET state = 'running'",
	} {
		_, err := pool.Exec(context.Background(), sql)
		require.NoError(t, err)
	}
}

// deadJobRows is baton.jobs's dead row versions, as the statistics count them.
func deadJobRows(t *testing.T, pool *pgxpool.Pool) (n int64) {
	t.Helper()
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'baton.jobs'::regclass").Scan(&n))
	return n
}
