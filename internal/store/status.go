package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Event is one entry of a job's history.
type Event struct {
	At      time.Time `json:"at"`
	From    *JobState `json:"from"`
	To      JobState  `json:"to"`
	Attempt int32     `json:"attempt"`
	Worker  *string   `json:"worker,omitempty"`
	Error   *string   `json:"error,omitempty"`
	// RunSeconds is how long the handler ran, on the change that ends an
	// attempt whose handler returned (a success or a failure).
	RunSeconds *float64 `json:"run_seconds,omitempty"`
	// Note says what a worker changed of the job's own settings for the
	// attempt that this claim starts (a timeout or lease it capped).
	Note *string `json:"note,omitempty"`
}

// JobStatus is a job as users see it (CLI and API): db.JobStatus's twin,
// field for field, where its fields are documented.
type JobStatus struct {
	ID             int64           `json:"id"`
	Queue          string          `json:"queue"`
	State          JobState        `json:"state"`
	Payload        json.RawMessage `json:"payload"`
	Priority       int16           `json:"priority"`
	Attempts       int32           `json:"attempts"`
	MaxAttempts    *int32          `json:"max_attempts"`
	RunAt          time.Time       `json:"run_at"`
	CreatedAt      time.Time       `json:"created_at"`
	StartedAt      *time.Time      `json:"started_at"`
	FinishedAt     *time.Time      `json:"finished_at"`
	LeaseExpiresAt *time.Time      `json:"lease_expires_at,omitempty"`
	LastError      *string         `json:"last_error"`
	Result         json.RawMessage `json:"result"`
	ParentID       *int64          `json:"parent_id"`
	Children       []int64         `json:"children"`
	LostLeases     int32           `json:"lost_leases"`
	RunsAlone      bool            `json:"runs_alone"`
	History        []Event         `json:"history,omitempty"`
	Join           *JoinWait       `json:"join,omitempty"`
	HistoryOmitted int32           `json:"history_omitted,omitempty"`
	Tags           []string        `json:"tags,omitempty"`
	Timeout        string          `json:"timeout,omitempty"`
	Lease          string          `json:"lease,omitempty"`
	Group          string          `json:"group,omitempty"`
}

// JoinWait is a fan-out whose join is still to come.
type JoinWait struct {
	Children int32 `json:"children"` // jobs it fanned out to
	Pending  int32 `json:"pending"`  // of them, not yet succeeded
}

// MaxHistory is how many of a job's state changes Status shows: its last.
const MaxHistory = 100

// StatusOf shows a job row as users see it, without history or children.
func StatusOf(j ReadableJob) *JobStatus {
	return &JobStatus{
		ID: j.ID, Queue: j.Queue, State: j.State, Payload: j.Payload, Priority: j.Priority,
		Attempts: j.Attempts, MaxAttempts: j.MaxAttempts, RunAt: j.RunAt, CreatedAt: j.CreatedAt,
		StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, LeaseExpiresAt: j.LeaseExpiresAt,
		LastError: j.LastError, Result: j.Result, ParentID: j.ParentID, Children: []int64{},
		LostLeases: j.LostLeases, RunsAlone: j.Isolated && !j.State.Terminal(),
		Tags: j.Tags, Timeout: msString(j.TimeoutMs), Lease: msString(j.LeaseMs), Group: deref(j.GroupKey),
	}
}

// deref is s, or "" for none.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// msString writes a duration stored in milliseconds as Go does ("" for none).
func msString(ms *int32) string {
	if ms == nil {
		return ""
	}
	return (time.Duration(*ms) * time.Millisecond).String()
}

// ListJobs reads a page of jobs (JobList), or with a tag, of the jobs with
// that tag (JobListByTag).
func ListJobs(ctx context.Context, x DBTX, p JobListParams, tag string) ([]ReadableJob, error) {
	if tag == "" {
		return New(x).JobList(ctx, p)
	}
	return New(x).JobListByTag(ctx, JobListByTagParams{Tag: tag, BeforeID: p.BeforeID, Queue: p.Queue, State: p.State, MaxJobs: p.MaxJobs})
}

// Status reads a job, its history and the ids of the jobs it handed off to:
// from one snapshot on a pool or a connection; in a transaction, within it
// (under READ COMMITTED, each of its four statements sees what has
// committed by its own start).
func Status(ctx context.Context, c Conn, id int64) (*JobStatus, error) {
	var s *JobStatus
	read := func(tx pgx.Tx) error {
		var err error
		s, err = status(ctx, New(tx), id)
		return err
	}
	var err error
	if b, ok := c.(interface {
		BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
	}); ok {
		err = pgx.BeginTxFunc(ctx, b, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, read)
	} else {
		err = pgx.BeginFunc(ctx, c, read)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, jobNotFound(id)
	case err != nil:
		return nil, fmt.Errorf("reading job %d: %w", id, MapError(err))
	}
	return s, nil
}

// jobNotFound is the error for a job that does not exist (or no longer: retention).
func jobNotFound(id int64) error { return fmt.Errorf("job %d %w", id, ErrNotFound) }

// status reads a job with its history and children through q.
func status(ctx context.Context, q *Queries, id int64) (*JobStatus, error) {
	j, err := q.JobGet(ctx, id)
	if err != nil {
		return nil, err
	}
	events, err := q.JobHistory(ctx, JobHistoryParams{JobID: id, MaxEvents: MaxHistory})
	if err != nil {
		return nil, err
	}
	children, err := q.JobChildren(ctx, id)
	if err != nil {
		return nil, err
	}
	var join *JoinWait
	switch f, err := q.FanOutPending(ctx, id); {
	case err == nil:
		join = &JoinWait{Children: f.Children, Pending: f.Pending}
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, err
	}
	s := StatusOf(j)
	s.Children = append(s.Children, children...)
	s.Join = join
	s.History = make([]Event, len(events))
	if len(events) > 0 {
		s.HistoryOmitted = events[0].Seq - 1
	}
	for i, e := range events {
		s.History[i] = Event{At: e.At, From: e.FromState, To: e.ToState, Attempt: e.Attempt, Worker: e.Worker, Error: e.Error,
			RunSeconds: e.RunSeconds, Note: e.Note}
	}
	return s, nil
}

// Cancel cancels a job that has not finished yet.
func Cancel(ctx context.Context, c Conn, id int64) error {
	return changeState(ctx, c, id, "canceled", "only unfinished jobs can be canceled", (*Queries).JobCancel)
}

// Retry re-drives a dead or canceled job with a fresh set of attempts.
func Retry(ctx context.Context, c Conn, id int64) error {
	return changeState(ctx, c, id, "retried", "only dead or canceled jobs can be retried", (*Queries).JobRetry)
}

// changeState runs change in a transaction of its own, or a savepoint of the
// caller's (a retry refused by a unique key then leaves the caller's
// transaction usable), and explains a refusal.
func changeState(ctx context.Context, c Conn, id int64, verb, rule string, change func(*Queries, context.Context, int64) (int64, error)) error {
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		_, err := change(New(tx), ctx, id)
		return err
	})
	return explainStateChange(ctx, c, id, verb, rule, err)
}

// explainStateChange turns "no row changed" into ErrNotFound or ErrConflict
// naming the job's current state.
func explainStateChange(ctx context.Context, x DBTX, id int64, verb, rule string, err error) error {
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) && !uniqueKeyTaken(err) {
		return fmt.Errorf("job %d could not be %s: %w", id, verb, MapError(err))
	}
	j, getErr := New(x).JobGet(ctx, id)
	switch {
	case errors.Is(getErr, pgx.ErrNoRows):
		return jobNotFound(id)
	case getErr != nil:
		return fmt.Errorf("job %d: %w", id, MapError(getErr))
	}
	if verb == "retried" && (j.State == BatonJobStateDead || j.State == BatonJobStateCanceled) {
		return fmt.Errorf("%w: job %d's unique key is held by a job that is not done; retry it once that one is", ErrConflict, id)
	}
	return fmt.Errorf("%w: job %d is %s; %s", ErrConflict, id, j.State, rule)
}

// uniqueKeyTaken reports whether err is jobs_unique_idx refusing a second
// live job with a key: a submit took it while a retry was looking.
func uniqueKeyTaken(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "jobs_unique_idx"
}
