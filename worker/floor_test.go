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

// A stage's claims start reading the claim index at its floor, the
// (priority, run_at) of the jobs it claimed last (JobClaim). Jobs of a more
// urgent priority are still claimed at once, and a job whose run_at is far
// below the floor in its priority (submitted to run at a past time) is
// found by the check below the floor, within a poll interval.
func TestClaimsFromTheFloorFindUrgentAndLateJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ran := make(chan string, 10)
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		ran <- string(j.Payload)
		return nil, nil
	}))
	b.start(fmt.Sprintf("poll_interval: 300ms\nstages:\n  - queue: a\n    handler: {go: %q}\n", name))

	b.submitJob(store.NewJob{Queue: "a", Payload: []byte(`"first"`), Priority: 5})
	require.Equal(t, `"first"`, <-ran)
	b.submitJob(store.NewJob{Queue: "a", Payload: []byte(`"urgent"`), Priority: 1})
	require.Equal(t, `"urgent"`, <-ran, "a more urgent priority than the floor's")
	late := b.submitJob(store.NewJob{Queue: "a", Payload: []byte(`"late"`), Priority: 1, RunAt: time.Now().Add(-time.Hour)})
	b.waitStateWithin(late, "succeeded", 10*time.Second)
	require.Equal(t, `"late"`, <-ran, "an hour below the floor: found below it")
}
