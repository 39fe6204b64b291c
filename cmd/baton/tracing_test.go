package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/baton-run/baton/internal/dbtest"
)

// collector is an OTLP/gRPC trace receiver: it passes on the names of the
// spans it is sent.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	names chan string
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.names <- s.Name
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
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
