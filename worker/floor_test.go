package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

// A stage's claims start reading the claim index at its floor, the
// (priority, run_at) of the jobs it claimed last (JobClaim). Jobs of a more
// urgent priority are still claimed at once, and a job whose run_at is far
// below the floor in its priority (submitted to run at a past time) is
// found by the check below the floor, within a poll interval; the claim
// that takes it starts at its run_at, not at the claim index's front
// (which, while a transaction holds back vacuum, steps over every job
// claimed since).
func TestClaimsFromTheFloorFindUrgentAndLateJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ran := make(chan string, 10)
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		ran <- string(j.Payload)
		return nil, nil
	}))
	r := b.start(fmt.Sprintf("poll_interval: 300ms\nstages:\n  - queue: a\n    handler: {go: %q}\n", name))

	b.submitJob(store.NewJob{Queue: "a", Payload: []byte(`"first"`), Priority: 5})
	require.Equal(t, `"first"`, <-ran)
	b.submitJob(store.NewJob{Queue: "a", Payload: []byte(`"urgent"`), Priority: 1})
	require.Equal(t, `"urgent"`, <-ran, "a more urgent priority than the floor's")
	floorless := worker.FloorlessClaims(r.Worker)
	late := b.submitJob(store.NewJob{Queue: "a", Payload: []byte(`"late"`), Priority: 1, RunAt: time.Now().Add(-time.Hour)})
	b.waitStateWithin(late, "succeeded", 10*time.Second)
	require.Equal(t, `"late"`, <-ran, "an hour below the floor: found below it")
	require.Equal(t, floorless, worker.FloorlessClaims(r.Worker), "every claim since the first had a floor")
}

// The check below the floor reads every claim index entry below it that the
// last vacuum left, and each replica checked every poll interval: the
// replicas of a queue take turns, one check an interval in all, and a job
// below their floors is still found.
func TestReplicasTakeTurnsCheckingBelowTheFloor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := b.handle(worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) { return nil, nil }))
	pipeline := fmt.Sprintf("poll_interval: 100ms\nstages:\n  - queue: a\n    handler: {go: %q}\n", name)
	replicas := make([]*workertest.Running, 3)
	for i := range replicas {
		replicas[i] = workertest.Start(t, b.pool, pipeline, worker.Config{ID: fmt.Sprintf("replica-%d", i), Handlers: b.handlers})
	}
	// Each replica has a floor once it has claimed jobs.
	jobs := make([]store.NewJob, 50)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: "a", Payload: json.RawMessage(`{}`)}
	}
	require.Eventually(t, func() bool {
		_, err := store.Submit(context.Background(), b.pool, jobs...)
		require.NoError(t, err)
		for _, r := range replicas {
			if !worker.HasFloor(r.Worker, "a") {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond)

	checks := func() (n int64) {
		for _, r := range replicas {
			n += worker.FloorChecks(r.Worker)
		}
		return n
	}
	before := checks()
	time.Sleep(2 * time.Second) // the window: 20 poll intervals
	n := checks() - before
	require.LessOrEqual(t, n, int64(25), "one check an interval in all (turns 90 ms apart at least), not one a replica")
	require.Positive(t, n)

	late := b.submitJob(store.NewJob{Queue: "a", Payload: json.RawMessage(`{}`), RunAt: time.Now().Add(-time.Hour)})
	b.waitStateWithin(late, "succeeded", 10*time.Second)
}
