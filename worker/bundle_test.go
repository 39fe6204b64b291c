package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

// bundle is what a worker test works with: a database of its own, and the
// Go handlers its pipelines may name. A test reads as setup, handle, start,
// submit, wait.
type bundle struct {
	t        *testing.T
	pool     *pgxpool.Pool
	handlers worker.Handlers
}

func setup(t *testing.T) *bundle {
	t.Helper()
	return &bundle{t: t, pool: dbtest.New(t), handlers: worker.Handlers{}}
}

// handle adds h to the handlers a pipeline may name, and returns its name.
func (b *bundle) handle(h worker.Handler) string {
	name := fmt.Sprintf("h%d", len(b.handlers)+1)
	b.handlers[name] = h
	return name
}

// start runs a worker on the pipeline YAML, with the bundle's handlers,
// until the test ends (or Stop).
func (b *bundle) start(pipeline string) *workertest.Running {
	b.t.Helper()
	return workertest.Start(b.t, b.pool, pipeline, worker.Config{ID: "test-worker", Handlers: b.handlers})
}

// submit puts a job into queue "a".
func (b *bundle) submit(payload string) int64 {
	b.t.Helper()
	ids, err := store.Submit(context.Background(), b.pool, store.NewJob{Queue: "a", Payload: json.RawMessage(payload)})
	require.NoError(b.t, err)
	return ids[0]
}

// waitState waits until job id is in state (polling the database, since the
// state lives there), and returns its status.
func (b *bundle) waitState(id int64, state store.JobState) *store.JobStatus {
	b.t.Helper()
	return b.waitStateWithin(id, state, 20*time.Second)
}

// waitStateWithin is waitState for a slower path.
func (b *bundle) waitStateWithin(id int64, state store.JobState, d time.Duration) *store.JobStatus {
	b.t.Helper()
	var s *store.JobStatus
	reached := assert.Eventually(b.t, func() bool {
		var err error
		s, err = store.Status(context.Background(), b.pool, id)
		require.NoError(b.t, err)
		return s.State == state
	}, d, 10*time.Millisecond)
	if !reached {
		// Show where it got stuck (the message arguments of Eventually are
		// evaluated before it polls).
		history, _ := json.MarshalIndent(s, "", "  ")
		b.t.Fatalf("job %d never reached %s; last seen:\n%s", id, state, history)
	}
	return s
}
