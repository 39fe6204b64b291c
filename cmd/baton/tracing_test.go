package main

import (
	"context"
	"encoding/hex"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/baton-run/baton/internal/dbtest"
)

// collector is an OTLP/gRPC trace receiver: it passes on the names of the
// spans it is sent, and the spans.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	names chan string
	spans chan *tracev1.Span
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				if c.names != nil {
					c.names <- s.Name
				}
				if c.spans != nil {
					c.spans <- s
				}
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// startCollector runs a collector on a free loopback port and returns the
// environment that sends a process's spans to it.
func startCollector(t *testing.T, c *collector) []string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, c)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + ln.Addr().String(), "OTEL_BSP_SCHEDULE_DELAY=50"}
}

// Tracing by OpenTelemetry's conventions: OTEL_PROPAGATORS says how a
// caller's context arrives (here B3), probes and scrapes make no span, and
// baton submit is a producer span under the TRACEPARENT it was started with,
// whose context the job carries. Before, only W3C headers were read, every
// /readyz and /metrics made a span, and baton submit made none.
func TestTracingByTheConventions(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	c := &collector{spans: make(chan *tracev1.Span, 256)}
	env := startCollector(t, c)
	srv := startServer(t, u, append(env, "OTEL_PROPAGATORS=b3"), "serve")
	for _, path := range []string{"/readyz", "/healthz", "/metrics", "/readyz"} {
		code, _ := request(t, "GET", srv.base+path, "", "")
		require.Equal(t, 200, code, path)
	}
	const b3Trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	code, body := request(t, "POST", srv.base+"/v1/queues/a/jobs", "", `{"payload": 1}`, "b3", b3Trace+"-00f067aa0ba902b7-1")
	require.Equal(t, 201, code, body)

	const cliTrace, cliParent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	r := batonWith(t, u, append(env, "TRACEPARENT=00-"+cliTrace+"-"+cliParent+"-01"), "", "submit", "b", "{}")
	require.Zero(t, r.code, r.stderr)

	spans := map[string]*tracev1.Span{}
	timeout := time.After(30 * time.Second)
	for spans["POST /v1/queues/{queue}/jobs"] == nil || spans["send b"] == nil {
		select {
		case s := <-c.spans:
			spans[s.Name] = s
		case <-timeout:
			t.Fatalf("the collector got only %v\n%s", slices.Collect(maps.Keys(spans)), srv.stderr)
		}
	}
	require.Equal(t, b3Trace, hex.EncodeToString(spans["POST /v1/queues/{queue}/jobs"].TraceId), "the B3 header was read")
	for name := range spans {
		require.NotContains(t, []string{"GET /readyz", "GET /healthz", "GET /metrics"}, name)
	}
	send := spans["send b"]
	require.Equal(t, tracev1.Span_SPAN_KIND_PRODUCER, send.Kind)
	require.Equal(t, cliTrace, hex.EncodeToString(send.TraceId))
	require.Equal(t, cliParent, hex.EncodeToString(send.ParentSpanId))
	var carried string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT trace_parent FROM baton.jobs WHERE queue = 'b'").Scan(&carried))
	require.Equal(t, "00-"+cliTrace+"-"+hex.EncodeToString(send.SpanId)+"-01", carried, "the job runs under the producer span")

	r = batonWith(t, u, []string{"OTEL_PROPAGATORS=tracecontext,carrier-pigeon"}, "", "submit", "b", "{}")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "OTEL_PROPAGATORS")
}

// The exporter is the one OpenTelemetry's environment names: here OTLP over
// gRPC (OTEL_EXPORTER_OTLP_PROTOCOL), where the default is HTTP.
func TestTracesGoWhereTheEnvironmentSays(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &collector{names: make(chan string, 64)}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, c)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	srv := startServer(t, u, []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + ln.Addr().String(), "OTEL_BSP_SCHEDULE_DELAY=50"}, "serve")
	code, body := request(t, "POST", srv.base+"/v1/queues/a/jobs", "", `{"payload": 1}`)
	require.Equal(t, 201, code, body)
	seen := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for !seen["send a"] || !seen["POST /v1/queues/{queue}/jobs"] {
		select {
		case name := <-c.names:
			seen[name] = true
		case <-timeout:
			t.Fatalf("the collector got only %v\n%s", seen, srv.stderr)
		}
	}
}

// An exporter OpenTelemetry does not know is refused at start-up, in one line.
func TestUnknownTracesExporterIsRefused(t *testing.T) {
	t.Parallel()
	c := exec.Command(batonBin, "serve", "--addr", "127.0.0.1:0")
	c.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=zipkin-v9")
	out, err := c.CombinedOutput()
	require.Error(t, err)
	require.Equal(t, 2, c.ProcessState.ExitCode(), "%s", out)
	require.Regexp(t, `^baton: tracing: .*zipkin-v9.*\n$`, string(out))
}
