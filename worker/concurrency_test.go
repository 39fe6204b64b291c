package worker_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/worker"
)

// A stage with no concurrency set runs more than its first 8 jobs at once
// when a backlog waits and its handler's latency does not rise with it (a
// 10 ms wait on something that is not saturated), and never more than its
// max_concurrency.
func TestAdaptiveSlotsGrowUnderABacklog(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	submitN(t, pool, "a", 3000)
	var p limitProbe
	replicas(t, url, 1, "stages:\n  - queue: a\n    handler: {go: h}\n    max_concurrency: 200\n", p.handler(10*time.Millisecond))
	drained(t, pool, "a", 3000)
	t.Logf("most in handlers at once: %d", p.maxInHandlers.Load())
	require.Greater(t, p.maxInHandlers.Load(), int64(4*worker.DefaultConcurrency), "slots grew under the backlog")
	require.LessOrEqual(t, p.maxInHandlers.Load(), int64(200), "never past max_concurrency")
}

// A handler whose latency rises with its concurrency (it waits its turn at
// a resource that serves one request at a time, 1 ms each) is not
// flooded: the slots stay near where its latency began to rise, however
// long the backlog.
func TestAdaptiveSlotsHoldBackASaturatedHandler(t *testing.T) {
	t.Parallel()
	pool, url := dbtest.NewWithURL(t)
	submitN(t, pool, "a", 1000)
	var (
		resource sync.Mutex
		in, most int
		inMu     sync.Mutex
	)
	replicas(t, url, 1, "stages:\n  - queue: a\n    handler: {go: h}\n", worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		inMu.Lock()
		in++
		most = max(most, in)
		inMu.Unlock()
		resource.Lock()
		time.Sleep(time.Millisecond)
		resource.Unlock()
		inMu.Lock()
		in--
		inMu.Unlock()
		return nil, nil
	}))
	drained(t, pool, "a", 1000)
	inMu.Lock()
	defer inMu.Unlock()
	t.Logf("most in handlers at once: %d", most)
	// Near: a loaded machine's scheduling delays blur the latency signal at
	// first (29 once, with the whole suite running); the ceiling is 1,000.
	require.LessOrEqual(t, most, 4*worker.DefaultConcurrency, "slots held back near the floor")
}
