package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/worker"
)

// A run alone stays alone until it is over, even when the job's earlier run
// on this worker (stopped as lost when the job was claimed to run alone, but
// slow to stop) ends in the middle of it. Before, that earlier run's end
// ended the isolation, and the stages claimed beside the lone run.
func TestALoneRunStaysAloneWhileAnEarlierRunWindsDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	ctx := context.Background()
	var runsOfJ atomic.Int32
	first, second := make(chan struct{}), make(chan struct{})
	started := make(chan string, 10)
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		if string(j.Payload) != `"J"` {
			started <- string(j.Payload)
			return nil, nil
		}
		if runsOfJ.Add(1) == 1 {
			started <- "J, beside others"
			<-first // deaf to its context
			return nil, nil
		}
		started <- "J, alone"
		<-second
		return nil, nil
	}))
	r := b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    lease: 1h\n    concurrency: 2\n", name))
	id := b.submit(`"J"`)
	require.Equal(t, "J, beside others", <-started)
	_, err := pool.Exec(ctx, "UPDATE baton.jobs SET lease_expires_at = now() - interval '1s' WHERE id = $1", id)
	require.NoError(t, err)
	require.Equal(t, "J, alone", <-started, "reaped, then claimed to run alone")
	b.submit(`"K"`)
	close(first) // the earlier run ends now, fenced
	require.Eventually(t, func() bool { return r.Stats().LeasesLost == 1 }, 10*time.Second, 5*time.Millisecond)
	select {
	case s := <-started:
		t.Fatalf("%s started beside the lone run", s)
	case <-time.After(10 * 20 * time.Millisecond): // ten polls
	}
	close(second)
	require.Equal(t, `"K"`, <-started, "the stages claim once the lone run is over")
	b.waitState(id, "succeeded")
}

// A crash leaves as many isolated jobs as its worker had in flight. Each
// runs alone, and the next is claimed as soon as one is over, not at the
// next poll: before, twenty took twenty poll intervals on one replica (a
// killed worker with slots grown under a backlog left hundreds, and the
// shop's ledger test waited minutes for them).
func TestACrashsIsolatedJobsRunOneAfterAnother(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var running, most atomic.Int32
	name := b.handle(worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond)
		return nil, nil
	}))
	ids := make([]int64, 20)
	for i := range ids {
		ids[i] = b.submit(fmt.Sprintf("%d", i))
	}
	// As the reaper leaves a dead worker's jobs: available again, isolated.
	_, err := b.pool.Exec(context.Background(), "UPDATE baton.jobs SET isolated = true, lost_leases = 1")
	require.NoError(t, err)
	b.start(fmt.Sprintf("poll_interval: 1m\nstages:\n  - queue: a\n    handler: {go: %q}\n    concurrency: 4\n", name))
	for _, id := range ids {
		b.waitStateWithin(id, "succeeded", 20*time.Second) // a poll interval is 1m
	}
	require.Equal(t, int32(1), most.Load(), "each ran alone")
}
