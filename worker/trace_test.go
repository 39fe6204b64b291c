package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

// With tracing off (the baton command's no-op provider) a run starts no
// span, yet the trace context a job came with reaches its handler and the
// job it hands off to.
func TestTracingOffCarriesTheTraceContextOn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	seen := make(chan trace.SpanContext, 2)
	h := b.handle(worker.HandlerFunc(func(ctx context.Context, j *worker.Job) (json.RawMessage, error) {
		seen <- trace.SpanContextFromContext(ctx)
		return j.Payload, nil
	}))
	workertest.Start(t, b.pool, fmt.Sprintf("stages:\n  - {queue: a, handler: {go: %s}, next: b}\n  - {queue: b, handler: {go: %s}}\n", h, h),
		worker.Config{ID: "test-worker", Handlers: b.handlers, TracerProvider: noop.NewTracerProvider()})
	ids, err := store.Submit(context.Background(), b.pool, store.NewJob{Queue: "a", Payload: json.RawMessage(`{}`), TraceParent: parent})
	require.NoError(t, err)
	s := b.waitState(ids[0], "succeeded")
	require.Len(t, s.Children, 1)
	b.waitState(s.Children[0], "succeeded")
	for range 2 {
		sc := <-seen
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", sc.TraceID().String(), "each handler's context is in the job's trace")
	}
	var next string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT trace_parent FROM baton.jobs WHERE id = $1", s.Children[0]).Scan(&next))
	require.Equal(t, parent, next, "the hand-off carries the context on")
}
