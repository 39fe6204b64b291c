// Package batontest helps test code that uses Baton: a throwaway database
// with Baton's schema per test, assertions on the jobs your code submitted
// (inside your test's transaction, too), and waiting for a job to reach a
// state without polling loops of your own.
//
// The databases live on the server at TEST_DATABASE_URL (any database of it:
// batontest creates its own beside it), else the local
// postgres://postgres@127.0.0.1:5432. Without a server a test is skipped,
// or failed when CI=true. Each test's database is a copy of a migrated
// template, made once per schema version, so one costs tens of
// milliseconds; it is dropped when the test ends.
package batontest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/worker"
)

// New returns a pool on a fresh database with Baton's schema, for t alone,
// dropped when t ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return dbtest.New(t)
}

// NewWithURL is New that also returns the database's URL, for what the test
// starts on its own (a baton worker process, say).
func NewWithURL(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return dbtest.NewWithURL(t)
}

// Open is New for code without a testing.TB (an Example, a TestMain): it
// returns the pool and a function that closes it and drops the database.
func Open(ctx context.Context) (*pgxpool.Pool, func(), error) {
	pool, _, cleanup, err := dbtest.Open(ctx)
	return pool, cleanup, err
}

// RequireSubmitted fails t unless c sees a job in queue, and returns the
// newest. Given the transaction your code submitted in, it sees the job
// before (and without) a commit.
func RequireSubmitted(t testing.TB, c db.Conn, queue string) db.JobStatus {
	t.Helper()
	jobs := submitted(t, c, queue, 1)
	if len(jobs) == 0 {
		t.Fatalf("batontest: no job was submitted to queue %q", queue)
	}
	return jobs[0]
}

// RequireSubmittedN fails t unless c sees exactly n jobs in queue (n at most
// 1,000), and returns them, newest first.
func RequireSubmittedN(t testing.TB, c db.Conn, queue string, n int) []db.JobStatus {
	t.Helper()
	if n < 0 || n > 1000 {
		t.Fatalf("batontest: RequireSubmittedN counts 0 to 1,000 jobs, not %d", n)
	}
	jobs := submitted(t, c, queue, n+1)
	if len(jobs) != n {
		t.Fatalf("batontest: %d jobs were submitted to queue %q, want %d", len(jobs), queue, n)
	}
	return jobs
}

// RequireNotSubmitted fails t if c sees a job in queue.
func RequireNotSubmitted(t testing.TB, c db.Conn, queue string) {
	t.Helper()
	if jobs := submitted(t, c, queue, 1); len(jobs) > 0 {
		t.Fatalf("batontest: job %d was submitted to queue %q", jobs[0].ID, queue)
	}
}

func submitted(t testing.TB, c db.Conn, queue string, limit int) []db.JobStatus {
	t.Helper()
	jobs, err := db.List(context.Background(), c, db.ListOptions{Queue: queue, Limit: max(limit, 1)})
	if err != nil {
		t.Fatalf("batontest: listing queue %q: %v", queue, err)
	}
	return jobs
}

// Work runs job id's handler through a worker of cfg on pool (as Run would:
// claimed under a lease, its outcome committed, a success handed on), and
// returns the job once that attempt has ended: succeeded, failed (retrying,
// or dead), snoozed or canceled. The worker stops before Work returns, so
// the test sees everything it wrote. It works the other due jobs of its
// queues too: in a test's own database, those the test submitted. It fails
// t for a job that is running or finished, and if the attempt does not end
// within WaitTimeout (a job due later than that).
func Work(t testing.TB, pool *pgxpool.Pool, cfg worker.Config, id int64) db.JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	before, err := db.Status(ctx, pool, id)
	if err != nil {
		t.Fatalf("batontest: %v", err)
	}
	if final(before.State) || before.State == db.StateRunning {
		t.Fatalf("batontest: job %d is %s: it will not run again", id, before.State)
	}
	w, err := worker.New(pool, cfg)
	if err != nil {
		t.Fatalf("batontest: %v", err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	var s *db.JobStatus
	err = poll(ctx, func() (bool, error) {
		var err error
		s, err = db.Status(ctx, pool, id)
		return err == nil && ended(before, s), err
	})
	stop()
	if runErr := <-done; runErr != nil {
		t.Fatalf("batontest: worker: %v", runErr)
	}
	if err != nil {
		t.Fatalf("batontest: job %d: waiting for its attempt to end: %v", id, err)
	}
	// Read again: the worker's own writes after the handler (a hand-off's
	// children) are in by now.
	if s, err = db.Status(context.Background(), pool, id); err != nil {
		t.Fatalf("batontest: %v", err)
	}
	return *s
}

// ended reports whether job now has had an attempt since before, and it has
// ended: it is not running, and it is final, has used an attempt more, or
// has two state changes more (a snooze: claimed, then scheduled again,
// without using an attempt).
func ended(before, now *db.JobStatus) bool {
	switch {
	case now.State == db.StateRunning:
		return false
	case final(now.State), now.Attempts > before.Attempts:
		return true
	}
	return changes(now) >= changes(before)+2
}

func changes(s *db.JobStatus) int { return len(s.History) + int(s.HistoryOmitted) }

// WaitTimeout bounds Work, WaitForState and WaitForSubmitted.
const WaitTimeout = 30 * time.Second

// WaitForState waits until job id is in state, and returns it. It fails t
// when the job ends in another final state first (with its last error),
// when it does not exist, or after WaitTimeout.
func WaitForState(t testing.TB, c db.Conn, id int64, state db.JobState) db.JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	s, err := Await(ctx, c, id, state)
	if err != nil {
		t.Fatalf("batontest: %v", err)
	}
	return *s
}

// WaitForSubmitted waits until a job is in queue (a stage's hand-off, a
// periodic tick), and returns the newest. It fails t after WaitTimeout.
func WaitForSubmitted(t testing.TB, c db.Conn, queue string) db.JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	s, err := AwaitSubmitted(ctx, c, queue)
	if err != nil {
		t.Fatalf("batontest: %v", err)
	}
	return *s
}

// Await is WaitForState for code without a testing.TB (an Example), bounded
// by ctx: it returns the job once it is in state, or an error saying where
// it is instead.
func Await(ctx context.Context, c db.Conn, id int64, state db.JobState) (*db.JobStatus, error) {
	var s *db.JobStatus
	err := poll(ctx, func() (bool, error) {
		var err error
		if s, err = db.Status(ctx, c, id); err != nil {
			return false, err
		}
		if s.State != state && final(s.State) {
			last := ""
			if s.LastError != nil {
				last = ": " + *s.LastError
			}
			return false, fmt.Errorf("is %s, not %s%s", s.State, state, last)
		}
		return s.State == state, nil
	})
	if err != nil {
		now := "unknown"
		if s != nil {
			now = string(s.State)
		}
		return s, fmt.Errorf("job %d (%s), waiting for %s: %w", id, now, state, err)
	}
	return s, nil
}

// AwaitSubmitted is WaitForSubmitted for code without a testing.TB, bounded
// by ctx.
func AwaitSubmitted(ctx context.Context, c db.Conn, queue string) (*db.JobStatus, error) {
	var jobs []db.JobStatus
	err := poll(ctx, func() (bool, error) {
		var err error
		jobs, err = db.List(ctx, c, db.ListOptions{Queue: queue, Limit: 1})
		return len(jobs) > 0, err
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for a job in queue %q: %w", queue, err)
	}
	return &jobs[0], nil
}

// poll calls done until it says so or fails, or ctx ends: every 5 ms at
// first, backing off to 100 ms (a worker's claims and completions are what
// it waits for; reading more often would only slow them down).
func poll(ctx context.Context, done func() (bool, error)) error {
	wait := 5 * time.Millisecond
	for {
		ok, err := done()
		switch {
		case ok:
			return nil
		case err != nil && ctx.Err() == nil:
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
			wait = min(2*wait, 100*time.Millisecond)
		}
	}
}

// final reports whether a job in state s changes no more by itself (a
// retry or a re-drive still may).
func final(s db.JobState) bool {
	return s == db.StateSucceeded || s == db.StateDead || s == db.StateCanceled
}
