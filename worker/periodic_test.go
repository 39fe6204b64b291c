package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

// ticks lists the run_at of the jobs periodic entries made in queue, in order:
// a periodic job is due at its tick.
func ticks(t *testing.T, b *bundle, queue string) []time.Time {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), "SELECT run_at FROM baton.jobs WHERE queue = $1 ORDER BY run_at", queue)
	require.NoError(t, err)
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var at time.Time
		require.NoError(t, rows.Scan(&at))
		out = append(out, at)
	}
	require.NoError(t, rows.Err())
	return out
}

// An entry at @every 1s on three replicas for ten seconds makes ten jobs,
// give or take one, each for a tick of its own, one second apart: the
// database lets one replica take each tick.
func TestAPeriodicEntryMakesOneJobATickOnEveryReplica(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pipeline := "periodic:\n  - {name: beat, queue: beats, schedule: '@every 1s', payload: {n: 1}}\n"
	var replicas []*workertest.Running
	for i := range 3 {
		replicas = append(replicas, workertest.Start(t, b.pool, pipeline, worker.Config{ID: fmt.Sprintf("r%d", i)}))
	}
	time.Sleep(10 * time.Second) // the test is about how many ticks ten seconds hold
	for _, r := range replicas {
		r.Stop(t)
	}
	got := ticks(t, b, "beats")
	require.InDelta(t, 10, len(got), 1, "%v", got)
	for i := 1; i < len(got); i++ {
		require.Equal(t, time.Second, got[i].Sub(got[i-1]), "one job a tick, none skipped: %v", got)
	}
	var payload string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT payload::text FROM baton.jobs WHERE queue = 'beats' LIMIT 1").Scan(&payload))
	require.JSONEq(t, `{"n": 1}`, payload)
}

// A restart of every replica shorter than the entry's interval neither
// repeats nor skips a tick: the entry's next tick is kept in the database.
func TestARestartShorterThanTheIntervalKeepsTheTicks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pipeline := "periodic:\n  - {name: slow, queue: slow, schedule: '@every 2s'}\n"
	r := workertest.Start(t, b.pool, pipeline, worker.Config{ID: "first"})
	require.Eventually(t, func() bool { return len(ticks(t, b, "slow")) == 1 }, 10*time.Second, 10*time.Millisecond)
	r.Stop(t)
	r = workertest.Start(t, b.pool, pipeline, worker.Config{ID: "second"})
	require.Eventually(t, func() bool { return len(ticks(t, b, "slow")) == 3 }, 10*time.Second, 10*time.Millisecond)
	r.Stop(t)
	got := ticks(t, b, "slow")
	require.Equal(t, 2*time.Second, got[1].Sub(got[0]), "%v", got)
	require.Equal(t, 2*time.Second, got[2].Sub(got[1]), "%v", got)
}
