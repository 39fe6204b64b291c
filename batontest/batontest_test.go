package batontest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/batontest"
	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

// The assertions see what the test's own transaction submitted, before a
// commit; the pool does not.
func TestRequireSubmittedInsideTheTestsTransaction(t *testing.T) {
	t.Parallel()
	pool := batontest.New(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck

	batontest.RequireNotSubmitted(t, tx, "emails")
	_, err = db.Submit(ctx, tx, db.NewJob{Queue: "emails"}, db.NewJob{Queue: "emails", Payload: []byte(`{"to":"ada@example.com"}`)})
	require.NoError(t, err)
	j := batontest.RequireSubmitted(t, tx, "emails")
	require.JSONEq(t, `{"to":"ada@example.com"}`, string(j.Payload), "the newest")
	require.Len(t, batontest.RequireSubmittedN(t, tx, "emails", 2), 2)
	batontest.RequireNotSubmitted(t, pool, "emails")

	// And they fail when they should, saying why.
	for want, f := range map[string]func(t testing.TB){
		`no job was submitted to queue "sms"`:             func(t testing.TB) { batontest.RequireSubmitted(t, tx, "sms") },
		`2 jobs were submitted to queue "emails", want 3`: func(t testing.TB) { batontest.RequireSubmittedN(t, tx, "emails", 3) },
		`was submitted to queue "emails"`:                 func(t testing.TB) { batontest.RequireNotSubmitted(t, tx, "emails") },
	} {
		require.Contains(t, failure(f), want)
	}
}

// WaitForState returns once the job is in the state, and fails at once,
// with the job's last error, when it ends in another.
func TestWaitForState(t *testing.T) {
	t.Parallel()
	pool := batontest.New(t)
	ctx := context.Background()
	ids, err := db.Submit(ctx, pool, db.NewJob{Queue: "a"}, db.NewJob{Queue: "a"})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE baton.jobs SET state = 'succeeded', finished_at = now() WHERE id = $1;`, ids[0])
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE baton.jobs SET state = 'dead', finished_at = now(), last_error = 'card declined' WHERE id = $1`, ids[1])
	require.NoError(t, err)

	require.Equal(t, db.StateSucceeded, batontest.WaitForState(t, pool, ids[0], db.StateSucceeded).State)
	require.Contains(t, failure(func(t testing.TB) { batontest.WaitForState(t, pool, ids[1], db.StateSucceeded) }),
		fmt.Sprintf("job %d (dead), waiting for succeeded: is dead, not succeeded: card declined", ids[1]))
	require.Contains(t, failure(func(t testing.TB) { batontest.WaitForState(t, pool, 404, db.StateSucceeded) }), "not found")
	require.Equal(t, ids[1], batontest.WaitForSubmitted(t, pool, "a").ID)
}

// failure runs f with a testing.TB that records its failure, and returns it.
func failure(f func(t testing.TB)) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg.String()
}

type recorder struct {
	testing.TB
	msg strings.Builder
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	fmt.Fprintf(&r.msg, format, args...)
	runtime.Goexit()
}

// Work runs a job's handler through a real worker and returns once its
// attempt has ended: a success handed on, a failure to retry, a snooze.
func TestWorkRunsAJobsAttemptAndReturnsWhenItEnds(t *testing.T) {
	t.Parallel()
	pool := batontest.New(t)
	ctx := context.Background()
	cfg := worker.Config{
		Pipeline: &worker.Pipeline{Stages: []worker.Stage{
			{Queue: "a", Handler: worker.HandlerSpec{Go: "a"}, Next: "b", Backoff: worker.Duration(time.Minute)},
			{Queue: "b", Handler: worker.HandlerSpec{Go: "b"}},
		}},
		Handlers: worker.Handlers{
			"a": worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
				switch string(j.Payload) {
				case `"fail"`:
					return nil, errors.New("not yet")
				case `"snooze"`:
					return nil, worker.Snooze(time.Hour)
				}
				return j.Payload, nil
			}),
			"b": worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) { return nil, nil }),
		},
		Logger: slog.New(slog.DiscardHandler),
	}
	submit := func(payload string) int64 {
		ids, err := db.Submit(ctx, pool, db.NewJob{Queue: "a", Payload: []byte(payload)})
		require.NoError(t, err)
		return ids[0]
	}

	ok := batontest.Work(t, pool, cfg, submit(`"ok"`))
	require.Equal(t, db.StateSucceeded, ok.State)
	require.Len(t, ok.Children, 1, "handed on")
	failed := batontest.Work(t, pool, cfg, submit(`"fail"`))
	require.Equal(t, db.StateRetrying, failed.State)
	require.Equal(t, "not yet", *failed.LastError)
	require.Contains(t, failure(func(t testing.TB) { batontest.Work(t, pool, cfg, ok.ID) }), "is succeeded: it will not run again")
	snoozed := batontest.Work(t, pool, cfg, submit(`"snooze"`))
	require.Equal(t, db.StateScheduled, snoozed.State)
}
