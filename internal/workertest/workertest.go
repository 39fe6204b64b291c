// Package workertest runs a Baton worker for a test: on a pipeline given as
// YAML, until the test ends. The worker, api and cmd tests share it.
package workertest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/worker"
)

// Running is a worker a test started.
type Running struct {
	*worker.Worker
	cancel context.CancelFunc
	done   chan error
}

// Start runs a worker on pool with the pipeline YAML and cfg (its Pipeline
// set from the YAML; MaintenanceInterval 20 ms unless cfg sets one) until
// the test ends, or Stop. A worker that does not stop within 30 s, or whose
// Run fails, fails the test.
func Start(t testing.TB, pool *pgxpool.Pool, pipeline string, cfg worker.Config) *Running {
	t.Helper()
	p, err := worker.ParsePipeline([]byte(pipeline))
	if err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	cfg.Pipeline = p
	if cfg.MaintenanceInterval == 0 {
		cfg.MaintenanceInterval = 20 * time.Millisecond
	}
	w, err := worker.New(pool, cfg)
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Worker: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Stop signals shutdown and waits for Run to return; again, it does nothing.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop")
	}
}

// Cancel signals shutdown without waiting for it.
func (r *Running) Cancel() { r.cancel() }

// Done yields Run's result once it has returned (to a test that asks before
// Stop does).
func (r *Running) Done() <-chan error { return r.done }
