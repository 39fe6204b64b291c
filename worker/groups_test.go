package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// A job's group goes with its journey: a hand-off, direct (the next stage
// claimed by the same worker) or not, keeps it.
func TestAHandOffKeepsTheGroup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) { return j.Payload, nil }))
	r := b.start("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: " + name + "}\n    next: b\n  - queue: b\n    handler: {go: " + name + "}\n    next: c\n  - queue: c\n    handler: {go: " + name + "}\n")
	var ids []int64
	for range 20 {
		got, err := store.Submit(context.Background(), b.pool, store.NewJob{Queue: "a", Group: "tenant-7"})
		require.NoError(t, err)
		ids = append(ids, got...)
	}
	for _, id := range ids {
		b.waitState(id, "succeeded")
	}
	require.Eventually(t, func() bool {
		return count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'c' AND state = 'succeeded'") == 20
	}, 20*time.Second, 10*time.Millisecond)
	r.Stop(t)
	require.Equal(t, 60, count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE group_key = 'tenant-7'"))
	c, err := store.Status(context.Background(), b.pool, int64(count(t, b.pool, "SELECT max(id) FROM baton.jobs WHERE queue = 'c'")))
	require.NoError(t, err)
	require.Equal(t, "tenant-7", c.Group, "shown in the status")
	t.Logf("direct hand-offs: %d of 40", count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue IN ('b', 'c') AND started_at = created_at"))
}
