package store

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// RetryFilter chooses the jobs of a queue that RetryMatching re-drives.
type RetryFilter struct {
	// Queue is the queue. Required.
	Queue string
	// State is dead or canceled. Defaults to dead.
	State JobState
	// Since keeps the jobs finished at most this long ago (by the database's
	// clock). 0 keeps them all.
	Since time.Duration
	// ErrorLike keeps the jobs whose last error holds this text, in any
	// case. "" keeps them all.
	ErrorLike string
	// DryRun counts the jobs and changes nothing.
	DryRun bool
}

// RetryCounts says what RetryMatching did.
type RetryCounts struct {
	Matched int64 `json:"matched"` // jobs the filter chose
	Retried int64 `json:"retried"` // of them, re-driven (0 on a dry run)
	// Skipped counts the jobs left as they were because another job that is
	// not done holds their unique key.
	Skipped int64 `json:"skipped"`
	// Complete is false when RetryMatching stopped at its deadline with
	// jobs left to look at.
	Complete bool `json:"complete"`
}

// retryBatch bounds the jobs one re-drive statement locks.
const retryBatch = 1000

// Validate checks a filter, filling in the default state.
func (f *RetryFilter) Validate() error {
	if err := ValidateQueueName(f.Queue); err != nil {
		return err
	}
	if f.State == "" {
		f.State = BatonJobStateDead
	}
	switch {
	case f.State != BatonJobStateDead && f.State != BatonJobStateCanceled:
		return fmt.Errorf("%w: state %q: only dead or canceled jobs can be retried", ErrInvalid, f.State)
	case f.Since < 0 || f.Since > MaxDelay:
		return fmt.Errorf("%w: since %s must be between 0 and %s", ErrInvalid, f.Since, MaxDelay)
	case len(f.ErrorLike) > 1024:
		return fmt.Errorf("%w: error_like is longer than 1024 bytes", ErrInvalid)
	}
	return nil
}

// RetryMatching re-drives the jobs of a queue that f chooses, as Retry does
// each (its history shows it): in batches of at most 1,000 (no statement
// locks more), at most perSecond jobs a second (0: no limit), until none is
// left or until the deadline (zero: none) passes.
func RetryMatching(ctx context.Context, x DBTX, f RetryFilter, perSecond float64, deadline time.Time) (RetryCounts, error) {
	var counts RetryCounts
	if err := f.Validate(); err != nil {
		return counts, err
	}
	limit := rate.NewLimiter(rate.Inf, retryBatch)
	if perSecond > 0 && !f.DryRun {
		limit = rate.NewLimiter(rate.Limit(perSecond), max(1, min(retryBatch, int(perSecond))))
	}
	batch := min(retryBatch, limit.Burst())
	var after int64
	for {
		if !deadline.IsZero() && time.Now().After(deadline) {
			return counts, nil
		}
		if err := limit.WaitN(ctx, batch); err != nil {
			return counts, err
		}
		p := JobRetryManyParams{
			QueueName: f.Queue, FromState: f.State, AfterID: after, SinceMs: f.Since.Milliseconds(),
			ErrorLike: f.ErrorLike, MaxJobs: int32(batch), DryRun: f.DryRun,
		}
		r, err := New(x).JobRetryMany(ctx, p)
		// A submit that took a job's unique key after the statement looked
		// breaks the index; run the batch again, which now sees the key held.
		for try := 0; try < 3 && uniqueKeyTaken(err); try++ {
			r, err = New(x).JobRetryMany(ctx, p)
		}
		if err != nil {
			return counts, fmt.Errorf("re-driving the %s jobs of %s: %w", f.State, f.Queue, MapError(err))
		}
		counts.Matched += int64(r.Matched)
		counts.Retried += int64(r.Retried)
		counts.Skipped += int64(r.Skipped)
		if int(r.Matched) < batch {
			counts.Complete = true
			return counts, nil
		}
		after = r.LastID
	}
}
