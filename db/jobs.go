package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// NewJob is a job to submit.
type NewJob struct {
	// Queue names the queue: 1 to 63 characters of a-z, 0-9, '_', '.' or
	// '-', starting with a letter or digit. Required.
	Queue string
	// Payload is the job's JSON input, at most 16 MiB. Defaults to {}.
	Payload json.RawMessage
	// Priority orders due jobs of a queue: 0 (first, the default) to 100.
	Priority int16
	// Delay postpones the job by this long (at most a year) from the
	// database's now().
	Delay time.Duration
	// RunAt, when set, is the time the job becomes due, in the years 2000
	// to 9999 (overrides Delay).
	RunAt time.Time
	// MaxAttempts caps attempts (at most 1,000). Defaults to the
	// max_attempts of the stage that first claims the job.
	MaxAttempts int32
	// TraceParent is the W3C traceparent of the span submitting the job,
	// so that its handler runs join that trace. Optional.
	TraceParent string
	// UniqueKey, when set, makes the job unique in its queue: while a job
	// of the queue with the same key is in one of UniqueStates, a submit of
	// this one creates nothing and returns that job's id. At most 255
	// bytes, no control characters.
	UniqueKey string
	// UniqueFor, with UniqueKey, holds the key for periods of this length
	// only: jobs submitted in another period are not duplicates. At least 1s.
	UniqueFor time.Duration
	// UniqueStates are the states in which a job keeps its key from
	// others. Defaults to the states of a job not yet done: scheduled,
	// available, running and retrying.
	UniqueStates []JobState
	// Tags label the job and the jobs it hands off, for lists and reports:
	// at most 16, each 1 to 64 characters of text without control
	// characters, none twice.
	Tags []string
	// Timeout and Lease, when set, replace the handler timeout and the
	// lease of the stage that runs the job, capped by its max_job_timeout
	// and max_job_lease. At most 24h; at least 10ms and 100ms.
	Timeout, Lease time.Duration
	// Group names the job's group (a customer, an account, a tenant): 1 to
	// 128 characters without control characters, kept by the jobs it hands
	// off. Optional.
	Group string
}

// Submit inserts jobs in one statement and returns their ids in order. On
// your transaction, they exist (and workers see them) once it commits. A
// unique job whose key is held returns the holder's id. Nothing is
// inserted when any job is invalid (ErrInvalid).
func Submit(ctx context.Context, c Conn, jobs ...NewJob) ([]int64, error) {
	return store.Submit(ctx, c, internal(jobs)...)
}

// SubmitWithKey submits jobs under a request's idempotency key (the IETF
// Idempotency-Key draft): the first use of the key submits them; the same
// key with the same jobs within 24 hours returns the first ids with
// replayed true and submits nothing; the key with other jobs fails with
// ErrKeyReused, and while its first use is in progress, with ErrConflict.
func SubmitWithKey(ctx context.Context, c Conn, key string, jobs ...NewJob) (ids []int64, replayed bool, err error) {
	return store.SubmitWithKey(ctx, c, key, internal(jobs)...)
}

// internal converts jobs for the store (a NewJob is the store's, field for
// field: a change to either fails this conversion at compile time).
func internal(jobs []NewJob) []store.NewJob {
	out := make([]store.NewJob, len(jobs))
	for i, j := range jobs {
		out[i] = store.NewJob(j)
	}
	return out
}

// JobState is where a job is in its life.
type JobState = store.JobState

// A job's states: scheduled (due later) or available, then running; then
// succeeded, or retrying and running again, until its attempts run out
// (dead). A job not yet finished may be canceled.
const (
	StateScheduled JobState = "scheduled"
	StateAvailable JobState = "available"
	StateRunning   JobState = "running"
	StateRetrying  JobState = "retrying"
	StateSucceeded JobState = "succeeded"
	StateDead      JobState = "dead"
	StateCanceled  JobState = "canceled"
)

// JobStatus is a job as users see it: its row, and from Status also its
// history and the jobs it handed off to. It is what baton status prints and
// GET /v1/jobs/{id} answers.
type JobStatus struct {
	ID          int64           `json:"id"`
	Queue       string          `json:"queue"`
	State       JobState        `json:"state"`
	Payload     json.RawMessage `json:"payload"`
	Priority    int16           `json:"priority"`
	Attempts    int32           `json:"attempts"`
	MaxAttempts *int32          `json:"max_attempts"` // nil until its first claim fills in the stage's
	RunAt       time.Time       `json:"run_at"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at"`
	FinishedAt  *time.Time      `json:"finished_at"`
	// LeaseExpiresAt is when a running job's lease ends unless heartbeats
	// extend it.
	LeaseExpiresAt *time.Time      `json:"lease_expires_at,omitempty"`
	LastError      *string         `json:"last_error"`
	Result         json.RawMessage `json:"result"`
	// ParentID is the job that handed this one off; Children the jobs this
	// one handed off to (Status only).
	ParentID *int64  `json:"parent_id"`
	Children []int64 `json:"children"`
	// LostLeases counts the leases of this job that expired while it ran;
	// RunsAlone says it waits to run alone on a replica (crash isolation).
	LostLeases int32 `json:"lost_leases"`
	RunsAlone  bool  `json:"runs_alone"`
	// History holds the job's last 100 state changes, oldest first (Status
	// only); HistoryOmitted counts the earlier ones left out.
	History []Event `json:"history,omitempty"`
	// Join is the join this job's fan-out waits for, while it waits.
	Join           *JoinWait `json:"join,omitempty"`
	HistoryOmitted int32     `json:"history_omitted,omitempty"`
	// Tags, Timeout and Lease are what the job was submitted with; Timeout
	// and Lease are durations such as "30s".
	Tags    []string `json:"tags,omitempty"`
	Timeout string   `json:"timeout,omitempty"`
	Lease   string   `json:"lease,omitempty"`
	// Group is the job's group ("" for none), which its journey keeps.
	Group string `json:"group,omitempty"`
}

// Event is one state change of a job: At, From (nil at its creation), To,
// Attempt, the Worker that made it, the Error that ended an attempt, the
// handler's RunSeconds and a Note on what a worker capped.
type Event = store.Event

// JoinWait is a fan-out whose join is still to come: of the Children it
// fanned out to, Pending have not succeeded yet.
type JoinWait = store.JoinWait

// Status reads a job with its history and the jobs it handed off to; from
// one snapshot on a pool or a connection. ErrNotFound when there is no
// such job (or no longer: retention).
func Status(ctx context.Context, c Conn, id int64) (*JobStatus, error) {
	s, err := store.Status(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return (*JobStatus)(s), nil
}

// ListOptions pick a page of jobs. The zero value is the first page of
// every job, newest first.
type ListOptions struct {
	// Queue, State and Tag, when set, keep only the jobs that match.
	Queue string
	State JobState
	Tag   string
	// Before, when set, lists the jobs with lower ids: the ID of the last
	// job of the page before.
	Before int64
	// Limit is the page's size: 1 to 1,000, 100 when 0.
	Limit int
}

// List reads a page of jobs, newest first, without their history or
// children. The next page is ListOptions.Before the last job's ID; a page
// shorter than the limit is the last.
func List(ctx context.Context, c Conn, o ListOptions) ([]JobStatus, error) {
	if o.Limit < 0 || o.Limit > 1000 || o.Before < 0 {
		return nil, fmt.Errorf("%w: a page is 1 to 1,000 jobs, before an id above 0", ErrInvalid)
	}
	p := store.JobListParams{BeforeID: o.Before, MaxJobs: int32(o.Limit)}
	if p.BeforeID == 0 {
		p.BeforeID = 1<<63 - 1
	}
	if p.MaxJobs == 0 {
		p.MaxJobs = 100
	}
	if o.Queue != "" {
		p.Queue = &o.Queue
	}
	if o.State != "" {
		if !o.State.Valid() {
			return nil, fmt.Errorf("%w: no job state %q", ErrInvalid, o.State)
		}
		p.State = &o.State
	}
	rows, err := store.ListJobs(ctx, c, p, o.Tag)
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", store.MapError(err))
	}
	jobs := make([]JobStatus, len(rows))
	for i, r := range rows {
		jobs[i] = JobStatus(*store.StatusOf(r))
	}
	return jobs, nil
}

// Cancel cancels a job that has not finished: a waiting job never runs, a
// running one's handler is stopped and its outcome discarded. ErrConflict
// for a finished job.
func Cancel(ctx context.Context, c Conn, id int64) error {
	return store.Cancel(ctx, c, id)
}

// Retry re-drives a dead or canceled job with a fresh set of attempts.
// ErrConflict for a job in another state.
func Retry(ctx context.Context, c Conn, id int64) error {
	return store.Retry(ctx, c, id)
}
