package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/baton-run/baton/internal/jsonb"
)

// NewJob is a job to submit: db.NewJob's twin, field for field, where its
// fields are documented (db converts one into the other, so a field added
// to one and not the other fails to compile).
type NewJob struct {
	Queue        string
	Payload      json.RawMessage
	Priority     int16
	Delay        time.Duration
	RunAt        time.Time
	MaxAttempts  int32
	TraceParent  string
	UniqueKey    string
	UniqueFor    time.Duration
	UniqueStates []JobState
	Tags         []string
	Timeout      time.Duration
	Lease        time.Duration
	Group        string
}

// DefaultUniqueStates are the states of a job not yet done: a unique job
// keeps its key while it waits or runs.
var DefaultUniqueStates = []JobState{BatonJobStateScheduled, BatonJobStateAvailable, BatonJobStateRunning, BatonJobStateRetrying}

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
	if j.Timeout != 0 && (j.Timeout < MinJobTimeout || j.Timeout > MaxJobOverride) {
		return fmt.Errorf("%w: timeout %s must be between %s and %s", ErrInvalid, j.Timeout, MinJobTimeout, MaxJobOverride)
	}
	if j.Lease != 0 && (j.Lease < MinJobLease || j.Lease > MaxJobOverride) {
		return fmt.Errorf("%w: lease %s must be between %s and %s", ErrInvalid, j.Lease, MinJobLease, MaxJobOverride)
	}
	if err := ValidateTags(j.Tags); err != nil {
		return err
	}
	if err := ValidateGroup(j.Group); err != nil {
		return err
	}
	return j.validateUnique()
}

// ValidateTags checks a job's tags: at most MaxTags, each ValidTag, none twice.
func ValidateTags(tags []string) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%w: tags: %d tags, at most %d", ErrInvalid, len(tags), MaxTags)
	}
	for i, t := range tags {
		if !ValidTag(t) {
			return fmt.Errorf("%w: tags: a tag must be 1 to %d characters without control characters", ErrInvalid, MaxTagLength)
		}
		if slices.Contains(tags[:i], t) {
			return fmt.Errorf("%w: tags: %q appears twice", ErrInvalid, t)
		}
	}
	return nil
}

// ValidateGroup checks a job's group: none (""), or 1 to MaxGroupLength
// characters of UTF-8 text without control characters.
func ValidateGroup(group string) error {
	if group != "" && (!utf8.ValidString(group) || utf8.RuneCountInString(group) > MaxGroupLength || strings.ContainsFunc(group, unicode.IsControl)) {
		return fmt.Errorf("%w: group: a group must be 1 to %d characters without control characters", ErrInvalid, MaxGroupLength)
	}
	return nil
}

// validateUnique checks a job's unique key, period and states, filling in
// the default states.
func (j *NewJob) validateUnique() error {
	if j.UniqueKey == "" {
		if j.UniqueFor != 0 || len(j.UniqueStates) > 0 {
			return fmt.Errorf("%w: unique_for and unique_states need a unique_key", ErrInvalid)
		}
		return nil
	}
	if len(j.UniqueKey) > 255 || !utf8.ValidString(j.UniqueKey) || strings.ContainsFunc(j.UniqueKey, unicode.IsControl) {
		return fmt.Errorf("%w: unique_key must be 1 to 255 bytes of UTF-8 text without control characters", ErrInvalid)
	}
	if j.UniqueFor != 0 && (j.UniqueFor < time.Second || j.UniqueFor > MaxDelay) {
		return fmt.Errorf("%w: unique_for %s must be between 1s and %s", ErrInvalid, j.UniqueFor, MaxDelay)
	}
	if len(j.UniqueStates) == 0 {
		j.UniqueStates = DefaultUniqueStates
	}
	for i, st := range j.UniqueStates {
		if !st.Valid() {
			return fmt.Errorf("%w: unique_states: %q is not a job state", ErrInvalid, st)
		}
		if slices.Contains(j.UniqueStates[:i], st) {
			return fmt.Errorf("%w: unique_states: %s appears twice", ErrInvalid, st)
		}
	}
	return nil
}

// Submit inserts jobs through x, which may be a pool or the caller's own
// transaction (then the jobs commit or roll back with the caller's work).
// Many jobs go in one statement, all or none. It returns the ids in input
// order; a unique job that was a duplicate (see NewJob.UniqueKey) gets the
// id of the job that holds its key (SubmitResults says which).
func Submit(ctx context.Context, x DBTX, jobs ...NewJob) ([]int64, error) {
	results, _, err := SubmitResults(ctx, x, "", jobs...)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(results))
	for i, r := range results {
		ids[i] = r.ID
	}
	return ids, nil
}

// Submitted is one job's outcome of a submit.
type Submitted struct {
	// ID is the new job's id, or for a duplicate the id of the job that
	// holds its unique key.
	ID int64
	// Duplicate says the job was not created: a job of its queue held its
	// unique key.
	Duplicate bool
}

// SubmitResults is Submit that says which jobs were duplicates, under an
// idempotency key when key is not empty (with SubmitWithKey's semantics: a
// replay returns the first request's ids, and says no job was a duplicate).
// Jobs with a unique key, and a key, need x to begin a transaction (a pool,
// a connection or a transaction all do).
func SubmitResults(ctx context.Context, x DBTX, key string, jobs ...NewJob) (results []Submitted, replayed bool, err error) {
	submit := func(x DBTX) ([]Submitted, error) {
		rows, err := insert(ctx, x, jobs)
		if err != nil {
			return nil, err
		}
		out := make([]Submitted, len(rows))
		for i, r := range rows {
			out[i] = Submitted{ID: r.ID, Duplicate: r.duplicate}
		}
		return out, nil
	}
	if key == "" {
		if err := validate(jobs); err != nil {
			return nil, false, err
		}
		results, err = submit(x)
		return results, false, err
	}
	b, ok := x.(Beginner)
	if !ok {
		return nil, false, fmt.Errorf("%w: an idempotency key needs a handle that can begin a transaction", ErrInvalid)
	}
	err = keyed(ctx, b, key, jobs, func(q *Queries, prev []int64) ([]int64, error) {
		if prev != nil {
			replayed = true
			for _, id := range prev {
				results = append(results, Submitted{ID: id})
			}
			return prev, nil
		}
		results, err = submit(q.db)
		ids := make([]int64, len(results))
		for i, r := range results {
			ids[i] = r.ID
		}
		return ids, err
	})
	return results, replayed, err
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

// inserted is a job's outcome of insert: its new row, or (duplicate) the id
// of the job that holds its unique key.
type inserted struct {
	JobInsertManyRow
	duplicate bool
}

// insert inserts validated jobs and returns their outcomes in input order.
// Jobs without a unique key go in one statement (JobInsertMany). With unique
// keys, in one transaction (whose now() every statement shares, and with it
// each key's period): the others as before, and the unique ones through
// JobInsertUnique, which skips those whose key a live job holds; those are
// looked up, and one whose holder finished in between is inserted again.
func insert(ctx context.Context, x DBTX, jobs []NewJob) ([]inserted, error) {
	var plain, unique []int // positions in jobs
	for i, j := range jobs {
		if j.UniqueKey == "" {
			plain = append(plain, i)
		} else {
			unique = append(unique, i)
		}
	}
	out := make([]inserted, len(jobs))
	if len(unique) == 0 {
		rows, err := insertRows(ctx, x, jobs)
		for i, r := range rows {
			out[i] = inserted{JobInsertManyRow: r}
		}
		return out, err
	}
	b, ok := x.(Beginner)
	if !ok {
		return nil, fmt.Errorf("%w: jobs with a unique key need a handle that can begin a transaction", ErrInvalid)
	}
	err := pgx.BeginFunc(ctx, b, func(tx pgx.Tx) error {
		if len(plain) > 0 {
			rows, err := insertRows(ctx, tx, pick(jobs, plain))
			if err != nil {
				return err
			}
			for k, i := range plain {
				out[i] = inserted{JobInsertManyRow: rows[k]}
			}
		}
		for try := 0; len(unique) > 0; try++ {
			if try == 3 {
				return fmt.Errorf("%w: the unique keys kept changing hands; submit again", ErrConflict)
			}
			rows, err := insertUnique(ctx, tx, pick(jobs, unique))
			if err != nil {
				return err
			}
			var again []int
			for _, i := range unique {
				if len(rows) > 0 && newRowOf(jobs[i], rows[0]) {
					r := rows[0]
					out[i], rows = inserted{JobInsertManyRow: JobInsertManyRow{ID: r.ID, State: r.State, RunAt: r.RunAt, CreatedAt: r.CreatedAt}}, rows[1:]
					continue
				}
				id, err := New(tx).JobFindUnique(ctx, JobFindUniqueParams{
					Queue: jobs[i].Queue, UniqueKey: jobs[i].UniqueKey, UniqueForMs: jobs[i].UniqueFor.Milliseconds(),
				})
				switch {
				case errors.Is(err, pgx.ErrNoRows): // its holder left its unique states meanwhile
					again = append(again, i)
				case err != nil:
					return fmt.Errorf("looking up the job that holds a unique key: %w", MapError(err))
				default:
					out[i] = inserted{JobInsertManyRow: JobInsertManyRow{ID: id}, duplicate: true}
				}
			}
			unique = again
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrInvalid) {
		return nil, fmt.Errorf("submitting jobs: %w", MapError(err))
	}
	return out, err
}

// pick returns the jobs at positions at.
func pick(jobs []NewJob, at []int) []NewJob {
	some := make([]NewJob, len(at))
	for k, i := range at {
		some[k] = jobs[i]
	}
	return some
}

// newRowOf reports whether row, the next that JobInsertUnique returned, is
// job's: they come back in input order, without the jobs skipped.
func newRowOf(job NewJob, row JobInsertUniqueRow) bool {
	if job.UniqueFor > 0 {
		return strings.HasPrefix(row.UniqueKey, job.UniqueKey+"\x1f")
	}
	return row.UniqueKey == job.UniqueKey
}

// insertRows inserts validated jobs without unique keys in one statement
// and returns the new rows in input order.
func insertRows(ctx context.Context, x DBTX, jobs []NewJob) ([]JobInsertManyRow, error) {
	rows, err := New(x).JobInsertMany(ctx, insertParams(jobs))
	if err != nil {
		return nil, fmt.Errorf("submitting jobs: %w", MapError(err))
	}
	return rows, nil
}

// insertParams lays validated jobs out as JobInsertMany's columns.
func insertParams(jobs []NewJob) JobInsertManyParams {
	p := JobInsertManyParams{
		Queues:       make([]string, len(jobs)),
		Payloads:     make([]string, len(jobs)),
		Priorities:   make([]int16, len(jobs)),
		DelaysMs:     make([]int64, len(jobs)),
		RunAts:       make([]time.Time, len(jobs)),
		MaxAttempts:  make([]int32, len(jobs)),
		TraceParents: make([]string, len(jobs)),
		Tags:         make([]string, len(jobs)),
		TimeoutsMs:   make([]int32, len(jobs)),
		LeasesMs:     make([]int32, len(jobs)),
		Groups:       make([]string, len(jobs)),
	}
	for i, j := range jobs {
		p.Groups[i] = j.Group
		p.Queues[i], p.Payloads[i], p.Priorities[i] = j.Queue, string(j.Payload), j.Priority
		p.DelaysMs[i], p.RunAts[i], p.MaxAttempts[i] = j.Delay.Milliseconds(), j.RunAt.UTC(), j.MaxAttempts
		p.TraceParents[i], p.Tags[i] = j.TraceParent, arrayLiteral(j.Tags)
		p.TimeoutsMs[i], p.LeasesMs[i] = int32(j.Timeout.Milliseconds()), int32(j.Lease.Milliseconds())
	}
	return p
}

// insertUnique inserts validated jobs with unique keys in one statement and
// returns the new rows, in input order, without the jobs it skipped.
func insertUnique(ctx context.Context, x DBTX, jobs []NewJob) ([]JobInsertUniqueRow, error) {
	c := insertParams(jobs)
	p := JobInsertUniqueParams{
		Queues: c.Queues, Payloads: c.Payloads, Priorities: c.Priorities, DelaysMs: c.DelaysMs, RunAts: c.RunAts,
		MaxAttempts: c.MaxAttempts, TraceParents: c.TraceParents, Tags: c.Tags, TimeoutsMs: c.TimeoutsMs, LeasesMs: c.LeasesMs,
		Groups:       c.Groups,
		UniqueKeys:   make([]string, len(jobs)),
		UniqueForMs:  make([]int64, len(jobs)),
		UniqueStates: make([]string, len(jobs)),
	}
	for i, j := range jobs {
		p.UniqueKeys[i], p.UniqueForMs[i], p.UniqueStates[i] = j.UniqueKey, j.UniqueFor.Milliseconds(), statesLiteral(j.UniqueStates)
	}
	rows, err := New(x).JobInsertUnique(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("submitting jobs: %w", MapError(err))
	}
	return rows, nil
}

// statesLiteral writes states as a PostgreSQL array literal.
func statesLiteral(states []JobState) string {
	names := make([]string, len(states))
	for i, s := range states {
		names[i] = string(s)
	}
	return arrayLiteral(names)
}

// arrayLiteral writes texts as a PostgreSQL array literal, each quoted ("" for
// none: the statements read it as NULL).
func arrayLiteral(texts []string) string {
	if len(texts) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, t := range texts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range t {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// SubmitJob submits one job, under key if it is not empty (with
// SubmitWithKey's semantics), and returns the job as users see it. A new job
// is shown from its insert's own RETURNING, and a replayed one is read in the
// transaction that holds its key: no read follows the commit, so a saved job
// is never answered with an error (a client that retried would submit it
// twice). A duplicate (a unique job whose key a live job holds) created
// nothing: it is shown as the job that holds the key.
func SubmitJob(ctx context.Context, c Conn, key string, job NewJob) (st *JobStatus, replayed, duplicate bool, err error) {
	if err := job.Validate(); err != nil {
		return nil, false, false, err
	}
	if key == "" {
		rows, err := insert(ctx, c, []NewJob{job})
		if err != nil {
			return nil, false, false, err
		}
		if rows[0].duplicate {
			st, err = status(ctx, New(c), rows[0].ID)
			if err != nil {
				return nil, false, true, fmt.Errorf("reading job %d: %w", rows[0].ID, MapError(err))
			}
			return st, false, true, nil
		}
		return created(job, rows[0].JobInsertManyRow), false, false, nil
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
		if duplicate = rows[0].duplicate; duplicate {
			st, err = status(ctx, q, rows[0].ID)
		} else {
			st = created(job, rows[0].JobInsertManyRow)
		}
		return []int64{rows[0].ID}, err
	})
	return st, replayed, duplicate, err
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
	st.Tags, st.Group = j.Tags, j.Group
	if j.Timeout > 0 {
		st.Timeout = j.Timeout.String()
	}
	if j.Lease > 0 {
		st.Lease = j.Lease.String()
	}
	return st
}
