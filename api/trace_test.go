package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/worker"
)

// One trace follows a job from the caller's request through the submit and
// every stage's handler run; exec handlers see it as TRACEPARENT.
func TestOneTraceFollowsAJobThroughEveryStage(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	srv := httptest.NewServer(api.New(pool, api.Config{Logger: slog.New(slog.DiscardHandler), TracerProvider: tp}).Handler())
	t.Cleanup(srv.Close)

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, err := http.NewRequest("POST", srv.URL+"/v1/queues/trace-a/jobs", strings.NewReader(`{"payload": {"n": 1}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var job db.JobStatus
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&job))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	p, err := worker.ParsePipeline([]byte(`
stages:
  - queue: trace-a
    handler: {exec: ["cat"]}
    next: trace-b
  - queue: trace-b
    handler: {exec: ["sh", "-c", "printf '\"%s\"' \"$TRACEPARENT\""]}
`))
	require.NoError(t, err)
	w, err := worker.New(pool, worker.Config{Pipeline: p, Logger: slog.New(slog.DiscardHandler), TracerProvider: tp})
	require.NoError(t, err)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); require.NoError(t, <-done) }()

	var child *db.JobStatus
	require.Eventually(t, func() bool {
		st, err := db.Status(ctx, pool, job.ID)
		require.NoError(t, err)
		if len(st.Children) != 1 {
			return false
		}
		child, err = db.Status(ctx, pool, st.Children[0])
		require.NoError(t, err)
		return child.State == "succeeded" && len(spans.Ended()) == 3
	}, 20*time.Second, 20*time.Millisecond)

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		byName[s.Name()] = s
		require.Equal(t, traceID, s.SpanContext().TraceID().String(), s.Name())
	}
	submit, runA, runB := byName["baton.submit trace-a"], byName["baton.handle trace-a"], byName["baton.handle trace-b"]
	require.NotNil(t, submit)
	require.NotNil(t, runA)
	require.NotNil(t, runB)
	require.Equal(t, callerSpan, submit.Parent().SpanID().String())
	require.Equal(t, submit.SpanContext().SpanID(), runA.Parent().SpanID())
	require.Equal(t, runA.SpanContext().SpanID(), runB.Parent().SpanID(), "the hand-off carries the trace")
	require.Equal(t, fmt.Sprintf(`"00-%s-%s-01"`, traceID, runB.SpanContext().SpanID()), string(child.Result))
}
