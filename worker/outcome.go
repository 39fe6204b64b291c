package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/baton-run/baton/internal/store"
)

// fail records a failed attempt, whose handler ran for ran: retrying after
// backoff, or dead; or what the handler asked for instead (Snooze, Cancel).
func (s *stage) fail(c claimed, herr error, ran time.Duration) {
	job := c.job
	// Not cancelled by shutdown: the attempt's outcome must be recorded.
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	var snooze *snoozeError
	if errors.As(herr, &snooze) {
		if s.snooze(ctx, c, snooze.d, ran) {
			return
		}
		herr = fmt.Errorf("%w, and snoozed %d times already (max_snoozes): the attempt fails", herr, s.cfg.MaxSnoozes)
	}
	var canceled *cancelError
	fault := workerFault(herr) && !IsPermanent(herr)
	if fault {
		herr = fmt.Errorf("%w (the worker ran out of a resource: up to %d such failures of a job are not counted as attempts)", herr, maxWorkerFaults)
	}
	delay := backoff(job.Attempt, s.cfg.Backoff.D(), s.cfg.MaxBackoff.D())
	row, err := retryDB(ctx, func() (store.JobFailRow, error) {
		return store.New(s.w.pool).JobFail(ctx, store.JobFailParams{
			ID: job.ID, LeaseToken: c.token, Error: errorText(herr, s.w.redact), Permanent: IsPermanent(herr), Unreadable: errors.Is(herr, errUnreadable),
			Canceled:    errors.As(herr, &canceled),
			WorkerFault: fault, MaxWorkerFaults: maxWorkerFaults, MaxDelayMs: s.cfg.MaxBackoff.D().Milliseconds(),
			DelayMs: delay.Milliseconds(), WorkerID: s.w.cfg.ID, RunUs: ran.Microseconds(),
		})
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.w.stats.leasesLost.Add(1)
		s.metrics.fenced.Inc()
		s.jobLog(job).Warn("failure fenced: lease lost, nothing committed", "error", herr)
	case err != nil:
		s.jobLog(job).Error("recording the failure failed; the job will run again when its lease expires", "error", err, "failure", herr)
	default:
		s.w.stats.failed.Add(1)
		s.w.metrics.finished.WithLabelValues(s.cfg.Queue, string(row.State)).Inc()
		s.jobLog(job).Info("attempt failed", "state", row.State, "counted", !row.Uncounted, "error", herr)
		if row.State == store.BatonJobStateRetrying {
			s.wakeIn(delay) // the retry starts on time, not at the next poll
		}
	}
}

// snooze sends a job back to wait for d, its attempt not counted, and
// reports whether it did: not past the stage's max_snoozes, nor with its
// lease lost.
func (s *stage) snooze(ctx context.Context, c claimed, d time.Duration, ran time.Duration) bool {
	n, err := retryDB(ctx, func() (int32, error) {
		return store.New(s.w.pool).JobSnooze(ctx, store.JobSnoozeParams{
			ID: c.job.ID, LeaseToken: c.token, DelayMs: d.Milliseconds(), MaxSnoozes: int32(s.cfg.MaxSnoozes),
			WorkerID: s.w.cfg.ID, Note: "snoozed for " + d.String(), RunUs: ran.Microseconds(),
		})
	})
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.jobLog(c.job).Error("recording the snooze failed; the job will run again when its lease expires", "error", err)
			return true
		}
		return false // past max_snoozes, or the lease is lost (the failure is fenced then too)
	}
	s.jobLog(c.job).Info("snoozed", "for", d, "snoozes", n)
	s.wakeIn(d)
	return true
}

// maxWorkerFaults bounds the failures per job that are not counted as
// attempts because the worker ran out of a resource (JobFail): each one
// extends the job's time to a terminal state by at most lease + max_backoff.
const maxWorkerFaults = 10

// workerFault reports whether a handler failed because its worker ran out of
// a resource (file descriptors, memory, processes), not for its job: an
// exec handler that could not start, an http handler that could not open a
// socket, or a Go handler's error wrapping such an errno.
func workerFault(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EAGAIN} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// redactor replaces each secret of 8 bytes or more with "[redacted]", the
// longest first (so that one holding another goes whole).
func redactor(secrets []string) *strings.Replacer {
	secrets = slices.DeleteFunc(slices.Clone(secrets), func(s string) bool { return len(s) < 8 })
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	var pairs []string
	for _, s := range slices.Compact(secrets) {
		pairs = append(pairs, s, "[redacted]")
	}
	return strings.NewReplacer(pairs...)
}

// retryDB retries a fenced, idempotent write while the database is
// unavailable, until ctx ends.
func retryDB[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	delay := 50 * time.Millisecond
	for {
		v, err := fn()
		err = store.MapError(err)
		if err == nil || !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(delay):
			delay = min(2*delay, time.Second)
		}
	}
}

// backoff is the delay before retry number attempt: base doubled per attempt,
// capped at maxDelay, with equal jitter (half fixed, half random) so failed
// jobs spread out instead of retrying in lock-step.
func backoff(attempt int, base, maxDelay time.Duration) time.Duration {
	d := max(base, time.Millisecond)
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return d/2 + rand.N(d/2+1)
}

// errorText is an error as the row and the history keep it: with its secrets
// redacted, at most 4 KiB (its end, where the cause usually is), cut on a
// character boundary, in valid UTF-8 without NUL, which PostgreSQL's text
// refuses. Handlers' text (stderr above all) may hold anything; the failure
// must still be recorded.
func errorText(err error, redact *strings.Replacer) string {
	const max = 4 << 10
	s := strings.ReplaceAll(strings.ToValidUTF8(redact.Replace(err.Error()), "\uFFFD"), "\x00", "\uFFFD")
	if len(s) > max {
		cut := len(s) - max
		for cut < len(s) && !utf8.RuneStart(s[cut]) {
			cut++
		}
		s = "…" + s[cut:]
	}
	return s
}
