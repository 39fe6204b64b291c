package maintenance_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/store"
)

// Every replica runs maintenance, but an interval's pass runs on one of
// them: run by each, the reaper walked the running jobs once per replica
// per interval, and four replicas read as many pages reaping as completing.
func TestMaintenancePassRunsOnOneReplicaAnInterval(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	const interval = time.Hour // the turn comes back only when the test moves it
	turn := func() bool { return maintenance.TakeTurn(ctx, store.New(pool), "pass", interval*9/10, log) }
	goneBy := func(d string) {
		_, err := pool.Exec(ctx, "UPDATE baton.maintenance_turns SET ran_at = now() - $1::interval WHERE step = 'pass'", d)
		require.NoError(t, err)
	}

	require.True(t, turn(), "the first replica on a new database takes the turn")
	require.False(t, turn(), "the next, within the interval, leaves it")

	goneBy("2 hours")
	var won atomic.Int32
	var replicas sync.WaitGroup
	for range 8 {
		replicas.Go(func() {
			if turn() {
				won.Add(1)
			}
		})
	}
	replicas.Wait()
	require.EqualValues(t, 1, won.Load(), "eight replicas ask at once: one runs the pass")

	// A lone replica's ticker jitters: its next tick may come a little
	// before a whole interval has gone by, and it still takes the turn.
	goneBy("57 minutes")
	require.True(t, turn())
	goneBy("50 minutes")
	require.False(t, turn(), "well within the interval, another replica's pass stands")

	// A replica whose reaper took 200 ms (a held transaction makes its walk
	// long) asks for the reaper's turn every 4 s, not every second; the
	// step's row is added by the first replica that asks.
	reap := func() bool {
		return maintenance.TakeTurn(ctx, store.New(pool), "reap", maintenance.ReapWait(time.Second, 200*time.Millisecond), log)
	}
	require.True(t, reap(), "the first reaper takes the turn, adding the step's row")
	require.False(t, reap())
	reapedBy := func(d string) {
		_, err := pool.Exec(ctx, "UPDATE baton.maintenance_turns SET ran_at = now() - $1::interval WHERE step = 'reap'", d)
		require.NoError(t, err)
	}
	reapedBy("2 seconds")
	require.False(t, reap())
	reapedBy("5 seconds")
	require.True(t, reap())
	require.Equal(t, time.Second*9/10, maintenance.ReapWait(time.Second, 10*time.Millisecond), "a quick reaper keeps every turn")
	require.Equal(t, 20*time.Second, maintenance.ReapWait(time.Second, time.Second), "a slow walk takes a twentieth of the time")
	require.Equal(t, time.Minute, maintenance.ReapWait(time.Second, time.Hour), "at most a minute apart")
}

// A busy table is due for its vacuum again within a second of the last one,
// and each replica that vacuumed on its own read it through every interval:
// an interval's vacuum runs on one replica.
func TestVacuumRunsOnOneReplicaAnInterval(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	const interval = time.Hour // the turn comes back only when the test moves it
	replica := func(waits map[string]maintenance.VacuumWait) []string {
		vacuumed, err := maintenance.VacuumTurn(ctx, pool, waits, interval, time.Now(), log)
		require.NoError(t, err)
		return vacuumed
	}
	a, b := map[string]maintenance.VacuumWait{}, map[string]maintenance.VacuumWait{}
	deadRows := func(sql string) {
		_, err := pool.Exec(ctx, sql)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return deadJobRows(t, pool) >= 30000 }, 10*time.Second, 20*time.Millisecond,
			"the statistics count the dead rows")
	}

	claimInBulk(t, pool)
	require.Eventually(t, func() bool { return deadJobRows(t, pool) >= 30000 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"jobs"}, replica(a), "the first replica takes the turn and vacuums")

	deadRows("UPDATE baton.jobs SET state = 'available'") // due again at once, as under load
	require.Empty(t, replica(b), "another replica, within the interval, leaves it")
	require.Empty(t, replica(a), "and so does the first")

	_, err := pool.Exec(ctx, "UPDATE baton.maintenance_turns SET ran_at = now() - interval '2 hours' WHERE step = 'vacuum'")
	require.NoError(t, err)
	require.Equal(t, []string{"jobs"}, replica(b), "the next interval's turn vacuums it")
}
