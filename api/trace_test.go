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
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/testenv"
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
	var job store.JobStatus
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

	var child *store.JobStatus
	require.Eventually(t, func() bool {
		st, err := store.Status(ctx, pool, job.ID)
		require.NoError(t, err)
		if len(st.Children) != 1 {
			return false
		}
		child, err = store.Status(ctx, pool, st.Children[0])
		require.NoError(t, err)
		return child.State == "succeeded" && len(spans.Ended()) == 4
	}, 20*time.Second, 20*time.Millisecond)

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		byName[s.Name()] = s
		require.Equal(t, traceID, s.SpanContext().TraceID().String(), s.Name())
	}
	// Named and described by OpenTelemetry's HTTP and messaging conventions.
	request, submit := byName["POST /v1/queues/{queue}/jobs"], byName["send trace-a"]
	runA, runB := byName["process trace-a"], byName["process trace-b"]
	require.NotNil(t, request, "spans: %v", byName)
	require.NotNil(t, submit, "spans: %v", byName)
	require.NotNil(t, runA, "spans: %v", byName)
	require.NotNil(t, runB, "spans: %v", byName)
	require.Equal(t, trace.SpanKindServer, request.SpanKind())
	require.Equal(t, "/v1/queues/{queue}/jobs", attrs(request)["http.route"])
	require.Equal(t, callerSpan, request.Parent().SpanID().String())
	require.Equal(t, request.SpanContext().SpanID(), submit.Parent().SpanID())
	require.Equal(t, trace.SpanKindProducer, submit.SpanKind())
	require.Equal(t, map[string]string{"messaging.system": "baton", "messaging.operation.type": "send",
		"messaging.operation.name": "send", "messaging.destination.name": "trace-a", "messaging.message.id": fmt.Sprint(job.ID)}, attrs(submit))
	require.Equal(t, trace.SpanKindConsumer, runA.SpanKind())
	require.Equal(t, map[string]string{"messaging.system": "baton", "messaging.operation.type": "process",
		"messaging.operation.name": "process", "messaging.destination.name": "trace-a",
		"messaging.message.id": fmt.Sprint(job.ID), "baton.job.attempt": "1"}, attrs(runA))
	require.Equal(t, submit.SpanContext().SpanID(), runA.Parent().SpanID())
	require.Equal(t, runA.SpanContext().SpanID(), runB.Parent().SpanID(), "the hand-off carries the trace")
	require.Equal(t, fmt.Sprintf(`"00-%s-%s-01"`, traceID, runB.SpanContext().SpanID()), string(child.Result))
}

// attrs are a span's attributes as strings.
func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// The access log names the request's trace, so a log line finds its spans,
// and the jobs a request submits join it: with a tracer provider (here the
// global one, which records nothing) and with tracing off (a no-op
// provider, for which the request is not instrumented at all).
func TestRequestsCarryTheCallersTrace(t *testing.T) {
	t.Parallel()
	for name, tp := range map[string]trace.TracerProvider{"global": nil, "off": noop.NewTracerProvider()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var log testenv.Buffer
			pool := dbtest.New(t)
			srv := httptest.NewServer(api.New(pool, api.Config{Logger: slog.New(slog.NewTextHandler(&log, nil)), TracerProvider: tp}).Handler())
			t.Cleanup(srv.Close)
			req, err := http.NewRequest("POST", srv.URL+"/v1/queues/a/jobs", strings.NewReader(`{"payload": 1}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusCreated, resp.StatusCode)
			srv.Close() // the line is written once the response is
			require.Contains(t, log.String(), "trace_id=4bf92f3577b34da6a3ce929d0e0e4736")
			var stored string
			require.NoError(t, pool.QueryRow(context.Background(), "SELECT trace_parent FROM baton.jobs").Scan(&stored))
			require.Contains(t, stored, "-4bf92f3577b34da6a3ce929d0e0e4736-")
		})
	}
}
