package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/worker"
)

func TestParsePipelineDefaults(t *testing.T) {
	t.Parallel()
	p, err := worker.ParsePipeline([]byte(`
stages:
  - queue: resize
    handler: {exec: ["cat"]}
    next: publish
  - queue: publish
    handler: {http: {url: "http://127.0.0.1:9000/publish"}}
    lease: 5s
`))
	require.NoError(t, err)
	require.Len(t, p.Stages, 2)
	s := p.Stages[0]
	require.Equal(t, worker.DefaultLease, s.Lease.D())
	require.Equal(t, worker.DefaultTimeout, s.Timeout.D())
	require.Equal(t, 5, s.MaxAttempts)
	require.Equal(t, worker.DefaultConcurrency, s.Concurrency)
	require.Equal(t, "publish", s.Next)
	require.Equal(t, 5*time.Second, p.Stages[1].Lease.D())
	require.Equal(t, worker.DefaultPollInterval, p.PollInterval.D())
}

func TestParsePipelineRejectsBadFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"Empty", ``, "no stages"},
		{"NoStages", `stages: []`, "no stages"},
		{"NotYAML", `stages: [`, "invalid pipeline"},
		{"UnknownField", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n    leese: 3s", "leese"},
		{"UnknownHandlerKind", "stages:\n  - queue: a\n    handler: {grpc: x}", `unknown handler kind "grpc"`},
		{"TwoHandlerKinds", "stages:\n  - queue: a\n    handler: {exec: [cat], go: x}", "exactly one"},
		{"NoHandler", "stages:\n  - queue: a", "handler is required"},
		{"EmptyExec", "stages:\n  - queue: a\n    handler: {exec: []}", "needs a command"},
		{"BadURL", "stages:\n  - queue: a\n    handler: {http: {url: 'ftp://x'}}", "must start with http"},
		{"BadQueueName", "stages:\n  - queue: Bad Name\n    handler: {exec: [cat]}", "queue name must be"},
		{"MissingQueue", "stages:\n  - handler: {exec: [cat]}", "queue is required"},
		{"BadNext", "stages:\n  - queue: a\n    next: 'b;c'\n    handler: {exec: [cat]}", "next"},
		{"NextIsSelf", "stages:\n  - queue: a\n    next: a\n    handler: {exec: [cat]}", "another queue"},
		{"DuplicateQueue", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n  - queue: a\n    handler: {exec: [cat]}", "two stages"},
		{"BadDuration", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n    lease: soon", "invalid duration"},
		{"DurationWithoutUnit", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n    timeout: 30", `invalid duration "30"`},
		{"LeaseTooShort", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n    lease: 1ms", "shorter than"},
		{"NegativeAttempts", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n    max_attempts: -1", "max_attempts"},
		{"ZeroConcurrencyIsDefault", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n    concurrency: 100000", "concurrency"},
		{"BackoffAboveMax", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n    backoff: 1h\n    max_backoff: 1m", "max_backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := worker.ParsePipeline([]byte(tt.yaml))
			require.ErrorIs(t, err, worker.ErrPipeline)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestLoadPipelineNamesAnUnreadableFile(t *testing.T) {
	t.Parallel()
	_, err := worker.LoadPipeline("/nonexistent/pipeline.yaml")
	require.ErrorIs(t, err, worker.ErrPipeline)
	require.ErrorContains(t, err, "/nonexistent/pipeline.yaml")
}
