// Package db is Baton's data layer: the sqlc-generated queries (files ending
// in .gen.go, never edited by hand) plus this file, which connects, migrates,
// runs transactions, maps driver errors to domain errors in one place, and
// holds the few operations that need more than one query.
package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers pgx5://
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/baton-run/baton/internal/jsonb"
	"github.com/baton-run/baton/migrations"
)

// DefaultURL is used when DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/baton?sslmode=disable"

// Domain errors. Callers test them with errors.Is; the driver error, when
// there is one, stays in the chain.
var (
	ErrNotFound    = errors.New("not found")
	ErrInvalid     = errors.New("invalid input")
	ErrConflict    = errors.New("conflict")
	ErrLeaseLost   = errors.New("lease lost")
	ErrUnavailable = errors.New("database unavailable")
)

// Limits on submitted jobs.
const (
	MaxPriority     = 100
	MaxMaxAttempts  = 1000
	MaxDelay        = 365 * 24 * time.Hour
	DefaultAttempts = 5
)

var queueNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// QueueNameRule says what a queue name may be, for error messages.
const QueueNameRule = "a queue name must be 1 to 63 characters of a-z, 0-9, '_', '.' or '-', starting with a letter or digit"

// ValidQueueName reports whether name can name a queue (see QueueNameRule).
func ValidQueueName(name string) bool { return queueNameRE.MatchString(name) }

// ParseID reads a job id written in plain decimal: no sign, no leading
// zeros, at most a positive int64.
func ParseID(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// ValidateQueueName returns an ErrInvalid error unless name can name a queue.
func ValidateQueueName(name string) error {
	if !ValidQueueName(name) {
		return fmt.Errorf("%w: queue %q: %s", ErrInvalid, name, QueueNameRule)
	}
	return nil
}

// MapError translates driver errors into domain errors: no rows becomes
// ErrNotFound, data errors ErrInvalid, lost connections and server shutdowns
// ErrUnavailable. Other errors are returned unchanged.
func MapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "22P05", pgErr.Code == "22021": // NUL or bad encoding in text/jsonb
			return fmt.Errorf("%w: %s", ErrInvalid, pgErr.Message)
		case strings.HasPrefix(pgErr.Code, "22"), pgErr.Code == "23514": // data exception, check violation
			return fmt.Errorf("%w: %s", ErrInvalid, pgErr.Message)
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "57P"),
			pgErr.Code == "53300", pgErr.Code == "25006":
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || pgconn.SafeToRetry(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// Refused reports whether the database refused a statement for its data or
// its rules (a constraint, a value it cannot store), as opposed to failing to
// run it (a lost connection, a shutdown, a deadlock or serialization
// failure): run again, it would be refused again.
func Refused(err error) bool {
	if errors.Is(err, ErrInvalid) { // MapError's data exceptions and check violations
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !errors.Is(MapError(err), ErrUnavailable) && !strings.HasPrefix(pgErr.Code, "40")
}

// WithTx runs fn in a transaction on pool: committed when fn returns nil,
// rolled back otherwise.
func WithTx(ctx context.Context, pool *pgxpool.Pool, fn func(q *Queries) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return fn(New(tx)) })
}

// EnsureDatabase creates the database named in databaseURL if it does not
// exist, connecting to the server's "postgres" database to do so.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("%w: parsing database URL: %w", ErrInvalid, err)
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return nil
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting to create database %q: %w", name, MapError(err))
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("looking up database %q: %w", name, MapError(err))
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another process
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating database %q: %w", name, MapError(err))
	}
	return nil
}

// Migrator returns golang-migrate over the embedded migrations, creating the
// database first if needed. Close it when done.
func Migrator(ctx context.Context, databaseURL string) (*migrate.Migrate, error) {
	if err := EnsureDatabase(ctx, databaseURL); err != nil {
		return nil, err
	}
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	u, err := migrateURL(databaseURL)
	if err != nil {
		return nil, err
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, u)
	if err != nil {
		return nil, fmt.Errorf("opening migrations: %w", MapError(err))
	}
	return m, nil
}

// MigrateUp applies every migration not yet applied.
func MigrateUp(ctx context.Context, databaseURL string) error {
	m, err := Migrator(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrating up: %w", err)
	}
	return nil
}

// migrateURL turns a postgres:// URL into the pgx5:// form golang-migrate's
// pgx driver requires, keeping Baton's version table apart from the user's.
func migrateURL(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%w: database URL must look like postgres://user@host:port/db", ErrInvalid)
	}
	u.Scheme = "pgx5"
	q := u.Query()
	q.Set("x-migrations-table", "baton_schema_migrations")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// NewJob describes a job to submit.
type NewJob struct {
	// Queue names the queue. Required.
	Queue string
	// Payload is the job's JSON input. Defaults to {}.
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
	if err := jsonb.Check(j.Payload); err != nil {
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

// Errors of SubmitWithKey.
var (
	ErrKeyInFlight = fmt.Errorf("%w: a request with this idempotency key is still in progress", ErrConflict)
	ErrKeyReused   = fmt.Errorf("%w: idempotency key was already used for a different request", ErrInvalid)
)

// Beginner starts a transaction: a pool, or a transaction (then a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Conn runs statements and transactions: a pool, a connection or a transaction.
type Conn interface {
	DBTX
	Beginner
}

// SubmitWithKey submits jobs under a request-level idempotency key, with the
// semantics of the IETF Idempotency-Key draft: the first use of a key submits
// the jobs; the same key with the same jobs within 24 hours returns the
// original ids (replayed = true) and submits nothing; the same key with other
// jobs fails with ErrKeyReused; and while the first request with a key is
// still in progress, others fail with ErrKeyInFlight. Concurrent duplicates
// therefore create the jobs exactly once.
func SubmitWithKey(ctx context.Context, b Beginner, key string, jobs ...NewJob) (ids []int64, replayed bool, err error) {
	err = keyed(ctx, b, key, jobs, func(q *Queries, prev []int64) ([]int64, error) {
		if prev != nil {
			ids, replayed = prev, true
			return prev, nil
		}
		rows, err := insert(ctx, q.db, jobs)
		for _, r := range rows {
			ids = append(ids, r.ID)
		}
		return ids, err
	})
	return ids, replayed, err
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

// keyed runs submit in a transaction that holds key: submit gets the ids of
// the key's earlier use with the same jobs (nil when the key is new) and
// returns the ids the key then stands for.
func keyed(ctx context.Context, b Beginner, key string, jobs []NewJob, submit func(q *Queries, prev []int64) ([]int64, error)) error {
	if key == "" || len(key) > 255 {
		return fmt.Errorf("%w: idempotency key must be 1 to 255 bytes", ErrInvalid)
	}
	if err := validate(jobs); err != nil {
		return err
	}
	fp := fingerprint(jobs)
	err := pgx.BeginFunc(ctx, b, func(tx pgx.Tx) error {
		q := New(tx)
		locked, err := q.IdempotencyTryLock(ctx, key)
		if err != nil {
			return err
		}
		if !locked {
			return ErrKeyInFlight
		}
		prev, err := q.IdempotencyGet(ctx, key)
		switch {
		case err == nil && !bytes.Equal(prev.Fingerprint, fp):
			return ErrKeyReused
		case err == nil:
			_, err := submit(q, prev.JobIds)
			return err
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		ids, err := submit(q, nil)
		if err != nil {
			return err
		}
		return q.IdempotencyPut(ctx, IdempotencyPutParams{Key: key, Fingerprint: fp, JobIds: ids})
	})
	if err != nil {
		if errors.Is(err, ErrKeyInFlight) || errors.Is(err, ErrKeyReused) || errors.Is(err, ErrInvalid) {
			return err
		}
		return fmt.Errorf("submitting with idempotency key: %w", MapError(err))
	}
	return nil
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

// fingerprint identifies a submit request by what it asks for, so the same
// jobs written with other JSON whitespace count as the same request.
func fingerprint(jobs []NewJob) []byte {
	h := sha256.New()
	var compact bytes.Buffer
	for _, j := range jobs {
		compact.Reset()
		_ = json.Compact(&compact, j.Payload)
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00%d\x00%d\x00", j.Queue, compact.Len(), j.Priority, j.Delay, j.RunAt.UnixNano(), j.MaxAttempts)
		h.Write(compact.Bytes())
	}
	return h.Sum(nil)
}

// Terminal reports whether a job in this state is finished: succeeded, dead
// or canceled.
func (s JobState) Terminal() bool {
	return s == BatonJobStateSucceeded || s == BatonJobStateDead || s == BatonJobStateCanceled
}

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
}

// JobStatus is a job as users see it (CLI and API): its row, history and children.
type JobStatus struct {
	ID             int64           `json:"id"`
	Queue          string          `json:"queue"`
	State          JobState        `json:"state"`
	Payload        json.RawMessage `json:"payload"`
	Priority       int16           `json:"priority"`
	Attempts       int32           `json:"attempts"`
	MaxAttempts    *int32          `json:"max_attempts"` // nil until the first claim fills in the stage's setting
	RunAt          time.Time       `json:"run_at"`
	CreatedAt      time.Time       `json:"created_at"`
	StartedAt      *time.Time      `json:"started_at"`
	FinishedAt     *time.Time      `json:"finished_at"`
	LeaseExpiresAt *time.Time      `json:"lease_expires_at,omitempty"`
	LastError      *string         `json:"last_error"`
	Result         json.RawMessage `json:"result"`
	ParentID       *int64          `json:"parent_id"`
	Children       []int64         `json:"children"`
	// LostLeases counts the leases of this job that expired while it ran
	// (its worker died, froze or lost the database); RunsAlone says it
	// waits to run alone on a replica (crash isolation, migration 11).
	LostLeases int32   `json:"lost_leases"`
	RunsAlone  bool    `json:"runs_alone"`
	History    []Event `json:"history,omitempty"`
}

// StatusOf shows a job row as users see it, without history or children.
func StatusOf(j Job) *JobStatus {
	return &JobStatus{
		ID: j.ID, Queue: j.Queue, State: j.State, Payload: j.Payload, Priority: j.Priority,
		Attempts: j.Attempts, MaxAttempts: j.MaxAttempts, RunAt: j.RunAt, CreatedAt: j.CreatedAt,
		StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, LeaseExpiresAt: j.LeaseExpiresAt,
		LastError: j.LastError, Result: j.Result, ParentID: j.ParentID, Children: []int64{},
		LostLeases: j.LostLeases, RunsAlone: j.Isolated && !j.State.Terminal(),
	}
}

// Status reads a job, its history and the ids of the jobs it handed off to,
// from one snapshot.
func Status(ctx context.Context, pool *pgxpool.Pool, id int64) (*JobStatus, error) {
	var s *JobStatus
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		s, err = status(ctx, New(tx), id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading job %d: %w", id, MapError(err))
	}
	return s, nil
}

// status reads a job with its history and children through q.
func status(ctx context.Context, q *Queries, id int64) (*JobStatus, error) {
	j, err := q.JobGet(ctx, id)
	if err != nil {
		return nil, err
	}
	events, err := q.JobHistory(ctx, id)
	if err != nil {
		return nil, err
	}
	children, err := q.JobChildren(ctx, id)
	if err != nil {
		return nil, err
	}
	s := StatusOf(j)
	s.Children = append(s.Children, children...)
	s.History = make([]Event, len(events))
	for i, e := range events {
		s.History[i] = Event{At: e.At, From: e.FromState, To: e.ToState, Attempt: e.Attempt, Worker: e.Worker, Error: e.Error,
			RunSeconds: e.RunSeconds}
	}
	return s, nil
}

// Cancel cancels a job that has not finished yet.
func Cancel(ctx context.Context, pool *pgxpool.Pool, id int64) error {
	_, err := New(pool).JobCancel(ctx, id)
	return explainStateChange(ctx, pool, id, "canceled", "only unfinished jobs can be canceled", err)
}

// Retry re-drives a dead or canceled job with a fresh set of attempts.
func Retry(ctx context.Context, pool *pgxpool.Pool, id int64) error {
	_, err := New(pool).JobRetry(ctx, id)
	return explainStateChange(ctx, pool, id, "retried", "only dead or canceled jobs can be retried", err)
}

// explainStateChange turns "no row changed" into ErrNotFound or ErrConflict
// naming the job's current state.
func explainStateChange(ctx context.Context, pool *pgxpool.Pool, id int64, verb, rule string, err error) error {
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("job %d could not be %s: %w", id, verb, MapError(err))
	}
	j, getErr := New(pool).JobGet(ctx, id)
	if getErr != nil {
		return fmt.Errorf("job %d: %w", id, MapError(getErr))
	}
	return fmt.Errorf("%w: job %d is %s; %s", ErrConflict, id, j.State, rule)
}
