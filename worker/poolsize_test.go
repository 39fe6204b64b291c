package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

// A replica's pool stays small whatever its cores and slots: the
// connections of every replica add up on the database server, where four
// replicas of 8 connections each ran a third slower than one
// (docs/benchmarks.md, "Replicas").
func TestPoolSizeIsSmallWhateverTheStages(t *testing.T) {
	t.Parallel()
	for stages, want := range map[int]int32{1: 2, 3: 2, 4: 2, 5: 3, 9: 4} {
		require.Equal(t, want, chain(t, stages, "").PoolSize(), "%d stages", stages)
	}
}

// A replica works a pipeline on a pool of PoolSize connections, with
// maintenance running every 20 ms beside it: every job gets through every
// stage in one attempt, and the heartbeats of handlers that run past their
// lease are not starved of a connection.
func TestAReplicaWorksOnAPoolOfPoolSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := dbtest.NewWithURL(t)
	const stages = 4
	yaml := pipelineYAML(stages, "    lease: 1s\n")
	p, err := worker.ParsePipeline([]byte(yaml))
	require.NoError(t, err)
	pool, err := store.Connect(ctx, store.ConnectConfig{URL: url, MaxConns: p.PoolSize()})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.Equal(t, int32(2), pool.Config().MaxConns)

	// Every tenth job's handler outlives its lease in each stage.
	pass := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
		var in struct{ Slow bool }
		if err := json.Unmarshal(job.Payload, &in); err != nil {
			return nil, err
		}
		if in.Slow {
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		return job.Payload, nil
	})
	r := workertest.Start(t, pool, yaml, worker.Config{ID: "small-pool", Handlers: worker.Handlers{"pass": pass}})

	const jobs = 300
	batch := make([]store.NewJob, jobs)
	for i := range batch {
		batch[i] = store.NewJob{Queue: "s1", Payload: json.RawMessage(fmt.Sprintf(`{"slow":%t}`, i%10 == 0))}
	}
	_, err = store.Submit(ctx, pool, batch...)
	require.NoError(t, err)

	last := fmt.Sprintf("s%d", stages)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM baton.jobs WHERE queue = $1 AND state = 'succeeded'", last).Scan(&n))
		return n == jobs
	}, 30*time.Second, 20*time.Millisecond)
	var again int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM baton.jobs WHERE attempts <> 1").Scan(&again))
	require.Zero(t, again, "jobs that ran more than once")
	require.Zero(t, r.Stats().LeasesLost)
}

// chain is a pipeline of stages s1 → s2 → ... handled by "pass", each
// stage with the lines extra.
func chain(t *testing.T, stages int, extra string) *worker.Pipeline {
	t.Helper()
	p, err := worker.ParsePipeline([]byte(pipelineYAML(stages, extra)))
	require.NoError(t, err)
	return p
}

func pipelineYAML(stages int, extra string) string {
	var b strings.Builder
	b.WriteString("poll_interval: 20ms\nstages:\n")
	for i := 1; i <= stages; i++ {
		fmt.Fprintf(&b, "  - queue: s%d\n    handler: {go: pass}\n%s", i, extra)
		if i < stages {
			fmt.Fprintf(&b, "    next: s%d\n", i+1)
		}
	}
	return b.String()
}
