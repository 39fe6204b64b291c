package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/baton-run/baton/internal/jsonb"
)

// NewJob describes a job to submit.
type NewJob struct {
	// Queue names the queue. Required.
	Queue string
	// Payload is the job's JSON input, at most MaxPayload bytes (numbers
	// counted written out in full). Defaults to {}.
	Payload json.RawMessage
	// Priority orders due jobs of a queue: 0 (first, the default) to 100.
	Priority int16
	// Delay postpones the job by this long from the database's now().
	Delay time.Duration
	// RunAt, when set, is the absolute time the job becomes due (overrides Delay).
	RunAt time.Time
	// MaxAttempts caps attempts. Defaults to the max_attempts of the stage
	// that first claims the job.
	MaxAttempts int32
	// TraceParent is the W3C traceparent of the span submitting the job, so
	// its handler runs join that trace. Optional.
	TraceParent string
}

// TraceParentOf is the W3C traceparent of the span in ctx ("" if none), for
// NewJob.TraceParent: a job carries the context of the span that created it.
func TraceParentOf(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "" // the common case with tracing off: no allocation
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// Validate checks a job against Baton's limits, filling in the default payload.
func (j *NewJob) Validate() error {
	if err := ValidateQueueName(j.Queue); err != nil {
		return err
	}
	if len(j.Payload) == 0 {
		j.Payload = json.RawMessage("{}")
	}
	if err := jsonb.Check(j.Payload, MaxPayload); err != nil {
		return fmt.Errorf("%w: payload: %w", ErrInvalid, err)
	}
	if !j.RunAt.IsZero() && !ValidRunAt(j.RunAt) {
		return fmt.Errorf("%w: run_at %s must be between %s and %s in UTC", ErrInvalid,
			j.RunAt.Format(time.RFC3339Nano), MinRunAt.Format(time.RFC3339), MaxRunAt.Format(time.RFC3339))
	}
	if j.Priority < 0 || j.Priority > MaxPriority {
		return fmt.Errorf("%w: priority %d must be between 0 and %d", ErrInvalid, j.Priority, MaxPriority)
	}
	if j.MaxAttempts < 0 || j.MaxAttempts > MaxMaxAttempts {
		return fmt.Errorf("%w: max_attempts %d must be between 1 and %d", ErrInvalid, j.MaxAttempts, MaxMaxAttempts)
	}
	if len(j.TraceParent) > 128 {
		return fmt.Errorf("%w: trace parent is longer than 128 bytes", ErrInvalid)
	}
	if j.Delay < 0 || j.Delay > MaxDelay {
		return fmt.Errorf("%w: delay %s must be between 0 and %s", ErrInvalid, j.Delay, MaxDelay)
	}
	return nil
}

// Submit inserts jobs through x, which may be a pool or the caller's own
// transaction (then the jobs commit or roll back with the caller's work).
// Many jobs go in one statement, all or none. It returns the ids in input order.
func Submit(ctx context.Context, x DBTX, jobs ...NewJob) ([]int64, error) {
	if err := validate(jobs); err != nil {
		return nil, err
	}
	rows, err := insert(ctx, x, jobs)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids, nil
}

// validate checks every job, naming the one at fault in a batch.
func validate(jobs []NewJob) error {
	for i := range jobs {
		if err := jobs[i].Validate(); err != nil {
			if len(jobs) > 1 {
				return fmt.Errorf("job %d: %w", i, err)
			}
			return err
		}
	}
	return nil
}

// insert inserts validated jobs in one statement and returns the new rows in
// input order.
func insert(ctx context.Context, x DBTX, jobs []NewJob) ([]JobInsertManyRow, error) {
	p := JobInsertManyParams{
		Queues:       make([]string, len(jobs)),
		Payloads:     make([]string, len(jobs)),
		Priorities:   make([]int16, len(jobs)),
		DelaysMs:     make([]int64, len(jobs)),
		RunAts:       make([]time.Time, len(jobs)),
		MaxAttempts:  make([]int32, len(jobs)),
		TraceParents: make([]string, len(jobs)),
	}
	for i, j := range jobs {
		p.Queues[i], p.Payloads[i], p.Priorities[i] = j.Queue, string(j.Payload), j.Priority
		p.DelaysMs[i], p.RunAts[i], p.MaxAttempts[i] = j.Delay.Milliseconds(), j.RunAt.UTC(), j.MaxAttempts
		p.TraceParents[i] = j.TraceParent
	}
	rows, err := New(x).JobInsertMany(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("submitting jobs: %w", MapError(err))
	}
	return rows, nil
}

// SubmitJob submits one job, under key if it is not empty (with
// SubmitWithKey's semantics), and returns the job as users see it. A new job
// is shown from its insert's own RETURNING, and a replayed one is read in the
// transaction that holds its key: no read follows the commit, so a saved job
// is never answered with an error (a client that retried would submit it twice).
func SubmitJob(ctx context.Context, c Conn, key string, job NewJob) (st *JobStatus, replayed bool, err error) {
	if key == "" {
		if err := job.Validate(); err != nil {
			return nil, false, err
		}
		rows, err := insert(ctx, c, []NewJob{job})
		if err != nil {
			return nil, false, err
		}
		return created(job, rows[0]), false, nil
	}
	err = keyed(ctx, c, key, []NewJob{job}, func(q *Queries, prev []int64) ([]int64, error) {
		if prev != nil {
			replayed = true
			st, err = status(ctx, q, prev[0])
			return prev, err
		}
		rows, err := insert(ctx, q.db, []NewJob{job})
		if err != nil {
			return nil, err
		}
		st = created(job, rows[0])
		return []int64{rows[0].ID}, nil
	})
	return st, replayed, err
}

// created shows a job as its insert made it, from the insert's RETURNING:
// its payload as submitted, and one history entry, its creation.
func created(j NewJob, r JobInsertManyRow) *JobStatus {
	st := &JobStatus{
		ID: r.ID, Queue: j.Queue, State: r.State, Payload: j.Payload, Priority: j.Priority,
		RunAt: r.RunAt, CreatedAt: r.CreatedAt, Children: []int64{},
		History: []Event{{At: r.CreatedAt, To: r.State}},
	}
	if j.MaxAttempts > 0 {
		st.MaxAttempts = &j.MaxAttempts
	}
	return st
}
