package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// stage_latency reports each handler's own run time, not the time between
// the statements that claimed and completed its batch. Thirty jobs whose
// handlers sleep 100, 300 or 500 ms go through two stages in batches (one
// claim of all thirty, grouped completions), and while they run another
// transaction holds the table their statements' count triggers write to for
// 700 ms, as any lock or slow commit would: statement times then say 700 ms
// or more for every job of a blocked batch. The run percentiles must still
// be the handlers' 300 ms (p50) and 500 ms (p99).
func TestStageLatencyMeasuresHandlersNotBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	ctx := context.Background()
	sleep := b.handle(worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		var p struct{ Ms int }
		if err := json.Unmarshal(j.Payload, &p); err != nil {
			return nil, err
		}
		select {
		case <-time.After(time.Duration(p.Ms) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return j.Payload, nil
	}))
	// All thirty wait in a paused queue, so that one claim takes them.
	_, err := pool.Exec(ctx, `INSERT INTO baton.queues (name, paused) VALUES ('a', true)`)
	require.NoError(t, err)
	var jobs []store.NewJob
	for i := range 30 {
		jobs = append(jobs, store.NewJob{Queue: "a", Payload: json.RawMessage(fmt.Sprintf(`{"ms":%d}`, []int{100, 300, 500}[i%3]))})
	}
	_, err = store.Submit(ctx, pool, jobs...)
	require.NoError(t, err)
	r := b.start(fmt.Sprintf(`
stages:
  - {queue: a, handler: {go: %q}, next: b, concurrency: 30}
  - {queue: b, handler: {go: %q}, concurrency: 30}
`, sleep, sleep))
	_, err = store.New(pool).QueuePause(ctx, store.QueuePauseParams{Name: "a", Paused: false})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return count(t, pool, `SELECT count(*) FROM baton.jobs WHERE state = 'running'`) == 30 },
		10*time.Second, 5*time.Millisecond)

	// The blocker: claims and completions wait for it (their triggers write
	// job_count_deltas), heartbeats and maintenance too.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE baton.job_count_deltas IN SHARE MODE`)
	require.NoError(t, err)
	time.Sleep(700 * time.Millisecond) // the blocking itself is what the test is about
	require.NoError(t, tx.Commit(ctx))

	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM baton.jobs WHERE queue = 'b' AND state = 'succeeded'`) == 30
	}, 20*time.Second, 10*time.Millisecond)
	st := r.Stats()
	require.Less(t, st.ClaimBatches, st.Claimed, "claims were batched")
	require.Less(t, st.CompleteBatches, st.Succeeded, "completions were grouped")

	latency, err := store.New(pool).ReportStageLatency(ctx, "")
	require.NoError(t, err)
	require.Len(t, latency, 2)
	for _, l := range latency {
		require.Equal(t, int64(30), l.Attempts, l.Queue)
		// A handler runs at least its sleep, and a loaded machine wakes it
		// late (43 ms once in CI); the blocked statements would add 700 ms.
		require.GreaterOrEqual(t, l.RunP50, 0.300, "%s run p50", l.Queue)
		require.Less(t, l.RunP50, 0.300+0.150, "%s run p50", l.Queue)
		require.GreaterOrEqual(t, l.RunP99, 0.500, "%s run p99", l.Queue)
		require.Less(t, l.RunP99, 0.500+0.150, "%s run p99", l.Queue)
		require.Equal(t, int64(30), l.Successes, l.Queue)
		require.NotNil(t, l.E2eP50)
		// The end-to-end time of a job at b covers both of its journey's
		// handlers, and the blocked statements too.
		require.GreaterOrEqual(t, *l.E2eP99, map[string]float64{"a": 0.5, "b": 1.0}[l.Queue], l.Queue)
	}

	// Statement times, which the view read before, are what the blocker
	// stretched: the old formula does not give the handlers' times.
	var oldP99 float64
	require.NoError(t, pool.QueryRow(ctx, `SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
		FROM baton.jobs WHERE queue = 'a'`).Scan(&oldP99))
	require.Greater(t, oldP99, 0.5+0.1, "the blocker stretched statement times")

	// Each attempt's run time is in its history too.
	s, err := store.Status(ctx, pool, 3)
	require.NoError(t, err)
	last := s.History[len(s.History)-1]
	require.Equal(t, store.BatonJobStateSucceeded, last.To)
	require.NotNil(t, last.RunSeconds)
	require.InDelta(t, 0.5, *last.RunSeconds, 0.020) // job 3 slept 500 ms
}
