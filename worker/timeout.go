package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Handler timeouts. A run's handler context (handlerContext) carries its
// deadline: the handler's start plus the stage's timeout, or the job's own.
// One timer per stage, armed for the earliest deadline of the handlers
// running, ends the runs past theirs with their cause (endOverdue). A timer
// per run, armed and stopped around every handler, cost a tenth of the
// worker's CPU in a no-op burn-down (time.AfterFunc, its closure, the timer
// heap's lock twice), while nearly every run ends long before its deadline:
// the stage's timer fires about once a timeout and reads the running set.
type deadlines struct {
	epoch time.Time // dues count from here, on the monotonic clock
	mu    sync.Mutex
	timer *time.Timer  // nil until the stage's first run
	at    atomic.Int64 // when timer fires, since epoch; 0: not armed (or being armed)
}

// since is how far t is past the epoch, as a due.
func (d *deadlines) since(t time.Time) int64 { return int64(t.Sub(d.epoch)) }

// armBy makes the stage's timer fire by due (since epoch) at the latest.
// The run's due is stored before: either endOverdue reads it, or armBy
// finds at zero (endOverdue clears it before it reads the running set) and
// waits for it. Most runs find the timer armed for an earlier deadline,
// and take no lock.
func (s *stage) armBy(due int64) {
	d := &s.deadlines
	if at := d.at.Load(); at != 0 && at <= due {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if at := d.at.Load(); at != 0 && at <= due {
		return
	}
	d.at.Store(due)
	wait := time.Duration(due - d.since(time.Now()))
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, s.endOverdue)
	} else {
		d.timer.Reset(wait)
	}
}

// stop disarms the timer: the stage's handlers have all returned.
func (d *deadlines) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.at.Store(0)
}

// runUnder is the context a run's handler runs under: the job's own (which
// a lost lease cancels with its cause) with the timeout as its deadline,
// kept in the run's inflight entry (one allocation for both), and the
// stage's timer armed for it. began is the handler's start.
func (s *stage) runUnder(in *inflight, ctx context.Context, began time.Time, timeout time.Duration, tooLong error) context.Context {
	in.ctx = handlerContext{Context: ctx, deadline: began.Add(timeout), tooLong: tooLong}
	due := s.deadlines.since(began) + int64(timeout)
	in.due.Store(due)
	s.armBy(due)
	return &in.ctx
}

// endOverdue is the stage's timer: it cancels each run past its deadline
// with its cause, and arms the timer again for the earliest left.
func (s *stage) endOverdue() {
	d := &s.deadlines
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at.Store(0) // before reading the running set: see armBy
	now, next := d.since(time.Now()), int64(0)
	s.mu.Lock()
	for _, in := range s.running {
		switch due := in.due.Load(); {
		case due == 0: // not running, or over
		case due <= now:
			if in.due.CompareAndSwap(due, 0) {
				in.cancel(in.ctx.tooLong)
			}
		case next == 0 || due < next:
			next = due
		}
	}
	s.mu.Unlock()
	if next != 0 { // armBy waits for d.mu: at is still 0
		d.at.Store(next)
		d.timer.Reset(time.Duration(next - now))
	}
}

// handlerContext is the job's context with the timeout's deadline. Done,
// Value and so context.Cause are the job context's own, so contexts derived
// from it are its children directly.
//
// Err reports context.DeadlineExceeded once the timeout ended the run, as
// a timer context would; contexts the handler derives from it report
// context.Canceled, with tooLong as their cause.
type handlerContext struct {
	context.Context
	deadline time.Time
	tooLong  error
}

func (c *handlerContext) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *handlerContext) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == c.tooLong {
		return context.DeadlineExceeded
	}
	return err
}
