package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// failedAttempts lists the errors of a job's failed attempts, in order.
func failedAttempts(s *store.JobStatus) []string {
	var errs []string
	for _, e := range s.History {
		if e.From != nil && *e.From == "running" && e.Error != nil {
			errs = append(errs, *e.Error)
		}
	}
	return errs
}

// A command printing 40 MB of JSON fails its attempt with the cap in the
// error; nothing is handed off (before, the 40 MB became the next job's
// payload).
func TestResultOverTheCapFailsTheAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	b.start(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "printf '\"'; head -c 40000000 /dev/zero | tr '\\0' x; printf '\"'"]}
    next: b
    max_attempts: 1
`)
	s := b.waitState(b.submit(`{}`), "dead")
	require.Equal(t, "stdout: result larger than 16777216 bytes", *s.LastError)
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'b'"))
}

// Results that are JSON but that jsonb cannot store (or that would be over
// the cap on every read, written out in full) fail their attempt with
// the true error and are retried with the stage's backoff. The lease is long:
// before, the completion statement failed and the attempt waited out the
// whole lease, to end with "lease expired: worker … stopped heartbeating".
func TestResultsPostgresCannotStoreFailTheAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	results := map[string]string{
		"nul":       `{"text": "a\u0000b"}`,
		"surrogate": `["\ud800"]`,
		"huge":      `{"n": 1e1000000}`,
		// 1.3 KB as written, 17 MB as every read would write it
		"expands": "[" + strings.Repeat("1e131071,", 129) + "1e131071]",
	}
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		var in struct{ Kind string }
		_ = json.Unmarshal(j.Payload, &in)
		return json.RawMessage(results[in.Kind]), nil
	}))
	b.start(fmt.Sprintf(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {go: %q}
    next: b
    lease: 5m
    max_attempts: 2
    backoff: 10ms
`, name))
	want := map[string]string{
		"nul":       `handler result cannot be stored: text: strings must not contain \u0000`,
		"surrogate": "handler result cannot be stored: [0]: unpaired UTF-16 surrogate escape",
		"huge":      "handler result cannot be stored: n: number is outside PostgreSQL's numeric range",
		"expands":   "handler result: result larger than 16777216 bytes once its numbers are written out in full",
	}
	for kind := range results {
		s := b.waitState(b.submit(fmt.Sprintf(`{"kind": %q}`, kind)), "dead")
		errs := failedAttempts(s)
		require.Len(t, errs, 2, "%s: both attempts ran and failed: %v", kind, errs)
		for _, e := range errs {
			require.Contains(t, e, want[kind])
		}
		require.Equal(t, "retrying", string(s.History[2].To), "%s: retried after backoff", kind)
	}
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'b'"))
}

// Error text a handler returns or prints is recorded whatever its bytes:
// NUL, invalid UTF-8, or multi-byte text cut in the middle of a character
// (before, the failure statement failed and the attempt waited out its lease).
func TestUnstorableErrorTextIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	messages := []string{"bad\x00byte", "not \xff\xfe utf-8", "x" + strings.Repeat("é", 5000)}
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		var i int
		_ = json.Unmarshal(j.Payload, &i)
		return nil, errors.New(messages[i])
	}))
	b.start(fmt.Sprintf(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {go: %q}
    lease: 5m
    max_attempts: 1
  - queue: e
    handler: {exec: ["sh", "-c", "printf 'disk\\000full \\377 %%s' $(head -c 3000 /dev/zero | tr '\\0' '\\342') >&2; exit 1"]}
    lease: 5m
    max_attempts: 1
`, name))
	var ids []int64
	for i := range messages {
		ids = append(ids, b.submit(fmt.Sprint(i)))
	}
	exec, err := store.Submit(context.Background(), pool, store.NewJob{Queue: "e"})
	require.NoError(t, err)
	ids = append(ids, exec[0])
	for _, id := range ids {
		s := b.waitState(id, "dead")
		require.True(t, utf8.ValidString(*s.LastError), "%q", *s.LastError)
		require.NotContains(t, *s.LastError, "\x00")
		require.NotContains(t, *s.LastError, "lease expired")
	}
	s, err := store.Status(context.Background(), pool, ids[0])
	require.NoError(t, err)
	require.Equal(t, "bad\ufffdbyte", *s.LastError)
}

// One job whose outcome the completion statement refuses (here a rule the
// operator added to the table) fails alone, with the true error, and is
// retried; the other jobs of its grouped completion commit and hand off.
func TestOneRefusedOutcomeFailsOnlyItsJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.pool
	_, err := pool.Exec(context.Background(),
		`ALTER TABLE baton.jobs ADD CONSTRAINT no_poison CHECK (payload::text NOT LIKE '%poison%')`)
	require.NoError(t, err)
	const n = 20
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		if j.Attempt == 1 {
			arrived.Done()
			<-all // finish together, so that completions are grouped
		}
		if string(j.Payload) == "7" {
			return json.RawMessage(`{"poison": true}`), nil
		}
		return j.Payload, nil
	}))
	r := b.start(fmt.Sprintf(`
poll_interval: 20ms
stages:
  - queue: a
    handler: {go: %q}
    next: b
    concurrency: %d
    lease: 5m
    max_attempts: 2
    backoff: 10ms
`, name, n))
	var ids []int64
	for i := range n {
		ids = append(ids, b.submit(fmt.Sprint(i)))
	}
	for i, id := range ids {
		if i == 7 {
			s := b.waitState(id, "dead")
			errs := failedAttempts(s)
			require.Len(t, errs, 2)
			require.Contains(t, errs[0], `recording the result failed`)
			require.Contains(t, errs[0], `violates check constraint "no_poison"`)
			continue
		}
		b.waitState(id, "succeeded")
	}
	require.Equal(t, n-1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'b'"))
	require.Less(t, r.Stats().CompleteBatches, int64(n), "completions were grouped")
}

// A row whose payload PostgreSQL cannot write out (planted by SQL here: 8,300
// numbers of 131,072 digits each, past its 1 GB limit; a 74.7 KB submit made
// one before submits counted numbers written out) fails its own job, a poison
// row, and leaves its queue working. Before, every claim of the queue failed
// with "out of memory" and rolled back: the queue was stuck for good, and no
// attempt was ever counted.
func TestARowThatCannotBeReadFailsItsJobAloneAndTheQueueWorks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var poison int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO baton.jobs (queue, state, payload, run_at)
		VALUES ('a', 'available', (SELECT jsonb_agg('1e131071'::numeric) FROM generate_series(1, 8300)), now())
		RETURNING id`).Scan(&poison))
	good := []int64{b.submit(`{"n": 1}`), b.submit(`{"n": 2}`)}
	// Readers show it with a null payload instead of failing (it costs them
	// writing it out, up to the limit, until a worker meets it).
	s, err := store.Status(ctx, b.pool, poison)
	require.NoError(t, err)
	require.Nil(t, s.Payload)

	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		return j.Payload, nil
	}))
	w := b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    next: b\n", name))
	// Each claim that meets the row makes PostgreSQL write out 1 GB, which
	// takes seconds (about 10 alone, on 2 cores), and more under load (a
	// first claim may time out, and its backend hold the row a little
	// longer): give it two minutes (one was short once, beside other tests).
	for _, id := range good {
		b.waitStateWithin(id, "succeeded", 2*time.Minute)
	}
	s = b.waitStateWithin(poison, "dead", 2*time.Minute)
	require.Contains(t, *s.LastError, "poison row: its payload cannot be read")
	require.Equal(t, int32(1), s.Attempts)
	require.JSONEq(t, "null", string(s.Payload), "moved aside: reading the job costs nothing now")
	require.Equal(t, 8300, count(t, b.pool, "SELECT jsonb_array_length(unreadable_payload) FROM baton.job_faults WHERE job_id = $1", poison))
	require.Equal(t, 2, count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'b'"), "the poison row handed nothing off")
	queue := "a"
	page, err := store.New(b.pool).JobList(ctx, store.JobListParams{Queue: &queue, BeforeID: 1 << 62, MaxJobs: 10})
	require.NoError(t, err)
	require.Len(t, page, 3)

	// A retry puts the payload back (fixed by SQL, or as it was).
	w.Stop(t)
	require.NoError(t, store.Retry(ctx, b.pool, poison))
	require.Equal(t, 8300, count(t, b.pool, "SELECT jsonb_array_length(payload) FROM baton.jobs WHERE id = $1 AND NOT EXISTS (SELECT FROM baton.job_faults WHERE job_id = id)", poison))
}

// A handler that fails because its worker ran out of a resource (here: no
// file descriptors) does not use its job's attempts, up to a bound per job,
// so the job still ends. Before, a worker whose descriptors a flood of
// connections had taken failed every job it ran, and each ended dead.
func TestFailuresOfTheWorkersOwnResourcesAreNotCountedUpToABound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	runs := map[string]int{}
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		mu.Lock()
		defer mu.Unlock()
		runs[string(j.Payload)]++
		if string(j.Payload) == `"always"` || runs[string(j.Payload)] <= 3 {
			return nil, fmt.Errorf("opening a pipe: %w", syscall.EMFILE)
		}
		return nil, nil
	}))
	b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    max_attempts: 1\n    backoff: 10ms\n    max_backoff: 20ms\n", name))

	s := b.waitState(b.submit(`"three times"`), "succeeded")
	require.Equal(t, int32(1), s.Attempts, "three failures of the worker's own, then one counted attempt")
	errs := failedAttempts(s)
	require.Len(t, errs, 3)
	require.Contains(t, errs[0], "too many open files (the worker ran out of a resource: up to 10 such failures of a job are not counted as attempts)")

	s = b.waitState(b.submit(`"always"`), "dead")
	require.Len(t, failedAttempts(s), 11, "ten not counted, then its one attempt")
	require.Equal(t, int32(1), s.Attempts)
	require.Equal(t, 10, count(t, b.pool, "SELECT worker_faults FROM baton.job_faults WHERE job_id = $1", s.ID))
}
