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
