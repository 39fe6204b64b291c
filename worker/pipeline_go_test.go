package worker_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/worker"
)

// A Pipeline built in Go with every optional field zero gets the defaults a
// file would (New validates it), and runs. Before, only ParsePipeline filled
// them in, and Run panicked: "non-positive interval for NewTicker".
func TestAPipelineBuiltInGoRunsWithDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) { return j.Payload, nil }))
	p := &worker.Pipeline{Stages: []worker.Stage{{Queue: "a", Handler: worker.HandlerSpec{Go: name}}}}
	w, err := worker.New(b.pool, worker.Config{Pipeline: p, Handlers: b.handlers, MaintenanceInterval: 20 * time.Millisecond})
	require.NoError(t, err)

	// Each zero field holds its default now (a field at a time, so a new
	// field without a default fails here).
	require.Equal(t, worker.Duration(worker.DefaultPollInterval), p.PollInterval)
	require.Equal(t, worker.Duration(worker.DefaultShutdownGrace), p.ShutdownGrace)
	st := reflect.ValueOf(p.Stages[0])
	for _, field := range []string{"Lease", "Timeout", "Backoff", "MaxBackoff", "MaxJobLease", "MaxJobTimeout", "MaxAttempts", "MaxConcurrency", "MaxSnoozes"} {
		require.False(t, st.FieldByName(field).IsZero(), "%s is left zero", field)
	}
	require.Zero(t, p.Stages[0].Concurrency, "no concurrency: adaptive slots, up to MaxConcurrency")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	id := b.submit(`{"n": 1}`)
	b.waitState(id, "succeeded")
	cancel()
	require.NoError(t, <-done)
}

// What a file would refuse, New refuses, wrapping ErrPipeline: never a
// panic, whichever required field is left zero.
func TestNewRefusesAnInvalidGoPipeline(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := b.handle(worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) { return nil, nil }))
	ok := worker.Stage{Queue: "a", Handler: worker.HandlerSpec{Go: name}}
	for _, c := range []struct {
		name string
		p    *worker.Pipeline
		want string
	}{
		{"no pipeline", nil, "no pipeline"},
		{"no stages", &worker.Pipeline{}, "no stages"},
		{"no queue", &worker.Pipeline{Stages: []worker.Stage{{Handler: ok.Handler}}}, "queue: required"},
		{"no handler", &worker.Pipeline{Stages: []worker.Stage{{Queue: "a"}}}, "handler: required"},
		{"a handler not given", &worker.Pipeline{Stages: []worker.Stage{{Queue: "a", Handler: worker.HandlerSpec{Go: "nosuch"}}}}, "nosuch"},
		{"a poll interval below the floor", &worker.Pipeline{PollInterval: worker.Duration(time.Millisecond), Stages: []worker.Stage{ok}}, "poll_interval"},
		{"a negative lease", &worker.Pipeline{Stages: []worker.Stage{{Queue: "a", Handler: ok.Handler, Lease: -1}}}, "lease"},
		{"a negative concurrency", &worker.Pipeline{Stages: []worker.Stage{{Queue: "a", Handler: ok.Handler, Concurrency: -1}}}, "concurrency"},
		{"a cycle", &worker.Pipeline{Stages: []worker.Stage{
			{Queue: "a", Handler: ok.Handler, Next: "b"}, {Queue: "b", Handler: ok.Handler, Next: "a"}}}, "cycle"},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.NotPanics(t, func() {
				_, err := worker.New(b.pool, worker.Config{Pipeline: c.p, Handlers: b.handlers})
				require.ErrorIs(t, err, worker.ErrPipeline)
				require.ErrorContains(t, err, c.want)
			})
		})
	}
}
