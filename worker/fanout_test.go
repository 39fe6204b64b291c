package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

const fanOutPipeline = `poll_interval: 20ms
stages:
  - queue: a
    handler: {go: split}
    fan_out: true
    next: b
  - queue: b
    handler: {go: double}
    concurrency: 1
    max_attempts: 1
    join: true
    next: c
  - queue: c
    handler: {go: collect}
`

// a → (fan_out) b → (join) c: a's [1, 2, 3] makes three jobs in b, in order;
// b doubles each, on three replicas that complete their jobs at the same
// moment; c gets exactly one job, [2, 4, 6], whose parent is a's job.
func TestAFanOutIsJoinedOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var started atomic.Int32
	allRunning := make(chan struct{})
	var once sync.Once
	var collected []string
	var mu sync.Mutex
	handlers := worker.Handlers{
		"split": worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) { return j.Payload, nil }),
		"double": worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
			if started.Add(1) == 3 {
				once.Do(func() { close(allRunning) })
			}
			select { // the three complete together, one on each replica
			case <-allRunning:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			var n int
			if err := json.Unmarshal(j.Payload, &n); err != nil {
				return nil, err
			}
			return json.RawMessage(fmt.Sprint(2 * n)), nil
		}),
		"collect": worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
			mu.Lock()
			defer mu.Unlock()
			collected = append(collected, string(j.Payload))
			return nil, nil
		}),
	}
	for i := range 3 {
		workertest.Start(t, b.pool, fanOutPipeline, worker.Config{ID: fmt.Sprintf("r%d", i), Handlers: handlers})
	}
	ids, err := store.Submit(context.Background(), b.pool, store.NewJob{Queue: "a", Payload: json.RawMessage(`[1, 2, 3]`), Group: "tenant-7"})
	require.NoError(t, err)
	root := ids[0]
	var joinID int64
	require.Eventually(t, func() bool {
		return b.pool.QueryRow(context.Background(), "SELECT id FROM baton.jobs WHERE queue = 'c' AND state = 'succeeded'").Scan(&joinID) == nil
	}, 20*time.Second, 10*time.Millisecond)
	s, err := store.Status(context.Background(), b.pool, joinID)
	require.NoError(t, err)
	require.JSONEq(t, `[2, 4, 6]`, string(s.Payload))
	require.Equal(t, root, *s.ParentID, "the joined job's parent is the job that fanned out")
	require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'c'"))
	require.Equal(t, 3, count(t, b.pool, "SELECT count(DISTINCT worker) FROM baton.attempts WHERE queue = 'b' AND outcome = 'succeeded'"),
		"one b job on each replica")
	require.Zero(t, count(t, b.pool, "SELECT count(*) FROM baton.fan_outs"), "the fan-out is done")
	require.Equal(t, 5, count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE group_key = 'tenant-7'"), "the fan-out and the join keep the group")

	parent, err := store.Status(context.Background(), b.pool, root)
	require.NoError(t, err)
	require.Len(t, parent.Children, 4, "three in b, then the join")
	require.Equal(t, joinID, parent.Children[3])
	seqs := count(t, b.pool, "SELECT sum(parent_seq) FROM baton.jobs WHERE parent_id = $1 AND queue = 'b'", root)
	require.Equal(t, 0+1+2, seqs)
	mu.Lock()
	require.Equal(t, []string{`[2, 4, 6]`}, collected)
	mu.Unlock()
}

// A join waits while a sibling is not done: one that ends dead blocks it,
// and the status of the job that fanned out says how many it waits for;
// a re-drive of that sibling lets the join happen, once. An empty array
// hands off nothing; a result that is no array fails the attempt.
func TestAJoinWaitsForEverySibling(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var failed atomic.Bool
	handlers := worker.Handlers{
		"split": worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) { return j.Payload, nil }),
		"double": worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
			if string(j.Payload) == `"flaky"` && !failed.Swap(true) {
				return nil, errors.New("not this time")
			}
			return j.Payload, nil
		}),
		"collect": worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) { return nil, nil }),
	}
	workertest.Start(t, b.pool, fanOutPipeline, worker.Config{ID: "w", Handlers: handlers})
	ctx := context.Background()

	root := b.submit(`["x", "flaky", "y"]`)
	var flaky int64
	require.Eventually(t, func() bool {
		return b.pool.QueryRow(ctx, "SELECT id FROM baton.jobs WHERE queue = 'b' AND state = 'dead'").Scan(&flaky) == nil &&
			count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'b' AND state = 'succeeded'") == 2
	}, 20*time.Second, 10*time.Millisecond)
	s, err := store.Status(ctx, b.pool, root)
	require.NoError(t, err)
	require.Equal(t, &store.JoinWait{Children: 3, Pending: 1}, s.Join, "the join waits for one of three")
	require.Zero(t, count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'c'"))

	require.NoError(t, store.Retry(ctx, b.pool, flaky))
	require.Eventually(t, func() bool {
		return count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'c' AND state = 'succeeded'") == 1
	}, 20*time.Second, 10*time.Millisecond)
	var payload string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT payload::text FROM baton.jobs WHERE queue = 'c'").Scan(&payload))
	require.JSONEq(t, `["x", "flaky", "y"]`, payload)
	s, err = store.Status(ctx, b.pool, root)
	require.NoError(t, err)
	require.Nil(t, s.Join)

	empty := b.waitState(b.submit(`[]`), "succeeded")
	require.Empty(t, empty.Children, "an empty array hands off nothing")
	notArray := b.waitState(b.submit(`{"not": "an array"}`), "retrying")
	require.Contains(t, *notArray.LastError, `fan_out: the result must be a JSON array, not {"not": "an array"}`)
}
