package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/internal/store"
)

// ErrLeaseLost is CompleteTx's error when the job's lease has moved on: it
// was reaped and claimed again, canceled, or released. Nothing was written;
// roll the transaction back. It is db.ErrLeaseLost, one value for both.
var ErrLeaseLost = db.ErrLeaseLost

// execution is what CompleteTx needs of the run a handler is in: its stage and
// lease, and whether it completed the job itself.
type execution struct {
	stage *stage
	token int64
	began time.Time
	span  trace.SpanContext // the run's, for the next stage's job
	// completed is 1 once a CompleteTx statement ran in the caller's
	// transaction (which may still roll back). A plain int32 with atomic
	// access, not an atomic.Bool: a Job may be copied.
	completed int32
}

func (e *execution) wasCompleted() bool { return atomic.LoadInt32(&e.completed) == 1 }

// CompleteTx completes job, the one a Go handler is running, inside the
// caller's transaction tx: the job's success, its history row and the next
// stage's job (with result as its payload) are written by the fenced
// completion statement, so that the handler's own writes in tx commit if
// and only if the job's completion does. Commit tx, then return from the
// handler (its result is then not used). If the lease has moved on, it
// returns ErrLeaseLost and writes nothing: roll tx back.
//
// The job's row stays locked from this statement to the commit: keep the
// rest of the transaction short. A transaction that rolls back after
// CompleteTx leaves the job running: the worker then counts the attempt as
// failed. Fenced by the lease token, not only by the running state, a run
// whose lease was taken over cannot complete the job even while a newer run
// of it is still running. A join stage (join: true) completes on its own:
// CompleteTx refuses it.
func CompleteTx(ctx context.Context, tx pgx.Tx, job *Job, result any) error {
	e := &job.exec
	if e.stage == nil {
		return errors.New("CompleteTx: the job is not one a worker is running (pass the *Job its handler was given)")
	}
	s := e.stage
	if s.cfg.Join {
		return fmt.Errorf("CompleteTx: stage %s joins (join: true): return the result from the handler instead", s.cfg.Queue)
	}
	out, err := encodeResult(result)
	if err != nil {
		return fmt.Errorf("CompleteTx: %w", err)
	}
	if s.cfg.FanOut {
		if err := fanOutResult(out); err != nil {
			return fmt.Errorf("CompleteTx: %w", err)
		}
	}
	rows, err := store.New(tx).JobCompleteMany(ctx, store.JobCompleteManyParams{
		Ids: []int64{job.ID}, LeaseTokens: []int64{e.token}, Results: []string{string(out)}, NextQueues: []string{s.cfg.Next},
		TraceParents: []string{store.TraceParentOf(trace.ContextWithSpanContext(ctx, e.span))}, Direct: []bool{false}, RunUs: []int64{time.Since(e.began).Microseconds()},
		WorkerID: s.w.cfg.ID, FanOut: s.cfg.FanOut,
	})
	if err != nil {
		return fmt.Errorf("CompleteTx: %w", store.MapError(err))
	}
	if len(rows) == 0 {
		return ErrLeaseLost
	}
	atomic.StoreInt32(&e.completed, 1)
	return nil
}

// FailTx records the failure of job, the one a Go handler is running, inside
// the caller's transaction tx, as the worker would record the handler's
// error: retrying after the stage's backoff, or dead once its attempts are
// used up (at once for a Permanent error; a Cancel error cancels it). The
// handler's own writes in tx (a note of what went wrong, say) then commit
// if and only if the failure does. Commit tx, then return from the handler.
// If the lease has moved on, it returns ErrLeaseLost and writes nothing:
// roll tx back. A Snooze is not a failure: return it from the handler.
func FailTx(ctx context.Context, tx pgx.Tx, job *Job, herr error) error {
	e := &job.exec
	if e.stage == nil {
		return errors.New("FailTx: the job is not one a worker is running (pass the *Job its handler was given)")
	}
	if herr == nil {
		return errors.New("FailTx: no error to record")
	}
	var snooze *snoozeError
	if errors.As(herr, &snooze) {
		return errors.New("FailTx: a snooze is not a failure: return worker.Snooze(d) from the handler")
	}
	s := e.stage
	var canceled *cancelError
	_, err := store.New(tx).JobFail(ctx, store.JobFailParams{
		ID: job.ID, LeaseToken: e.token, Error: errorText(herr, s.w.redact), Permanent: IsPermanent(herr),
		Canceled: errors.As(herr, &canceled), MaxWorkerFaults: maxWorkerFaults, MaxDelayMs: s.cfg.MaxBackoff.D().Milliseconds(),
		DelayMs: backoff(job.Attempt, s.cfg.Backoff.D(), s.cfg.MaxBackoff.D()).Milliseconds(), WorkerID: s.w.cfg.ID,
		RunUs: time.Since(e.began).Microseconds(),
	})
	switch err = store.MapError(err); {
	case errors.Is(err, store.ErrNotFound):
		return ErrLeaseLost
	case err != nil:
		return fmt.Errorf("FailTx: %w", err)
	}
	atomic.StoreInt32(&e.completed, 1)
	return nil
}

// encodeResult is a result as a handler returns it: JSON as it is, anything
// else marshaled, nil as null.
func encodeResult(result any) (json.RawMessage, error) {
	switch r := result.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		if !json.Valid(r) {
			return nil, errors.New("result is not valid JSON")
		}
		return r, nil
	}
	b, err := json.Marshal(result)
	if err != nil {
		return nil, fmt.Errorf("encoding result: %w", err)
	}
	return b, nil
}

// afterCompleteTx settles a run whose handler called CompleteTx or FailTx:
// if the caller's transaction committed, the job is done or failed (counted;
// nothing more to write); if it rolled back, the job still runs under this
// lease, and the attempt failed; if the lease moved on meanwhile, there is
// nothing to do.
func (s *stage) afterCompleteTx(c claimed, herr error, ran time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	r, err := retryDB(ctx, func() (store.JobHeldRow, error) {
		return store.New(s.w.pool).JobHeld(ctx, store.JobHeldParams{ID: c.job.ID, LeaseToken: c.token, WorkerID: s.w.cfg.ID})
	})
	switch {
	case err != nil:
		s.jobLog(c.job).Error("after CompleteTx, reading whether it committed failed; if it did not, the job runs again when its lease expires", "error", err)
	case r.EndedAs == string(store.BatonJobStateSucceeded):
		s.w.stats.succeeded.Add(1)
		s.metrics.succeeded.Inc()
		if next := s.w.stages[s.cfg.Next]; next != nil {
			signal(next.wake) // its job, handed off unclaimed
		}
	case r.EndedAs != "": // FailTx's, committed
		s.w.stats.failed.Add(1)
		s.w.metrics.finished.WithLabelValues(s.cfg.Queue, r.EndedAs).Inc()
		if r.EndedAs == string(store.BatonJobStateRetrying) {
			signal(s.wake)
		}
	case r.Ours && r.State == store.BatonJobStateRunning:
		if herr == nil {
			herr = errors.New("CompleteTx or FailTx was called, but its transaction did not commit")
		}
		s.fail(c, herr, ran)
	default:
		s.w.stats.leasesLost.Add(1)
		s.metrics.fenced.Inc()
		s.jobLog(c.job).Warn("after CompleteTx: lease lost, nothing committed", "state", r.State)
	}
}
