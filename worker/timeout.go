package worker

import (
	"context"
	"time"
)

// withTimeout is the context a handler runs under: the job's own (which a
// lost lease cancels with its cause) with the stage's or the job's timeout
// as its deadline. The timeout cancels the job's context with tooLong, so a
// run takes one context and one timer rather than a second context below
// the first (a timer context, and the map that lists it as its parent's
// child: an eighth of the worker's CPU in a no-op burn-down). stop ends the
// timer once the handler returns.
//
// Err reports context.DeadlineExceeded once the timeout ended the run, as
// a timer context would; contexts the handler derives from it report
// context.Canceled, with tooLong as their cause.
func withTimeout(job context.Context, cancel context.CancelCauseFunc, timeout time.Duration, tooLong error) (ctx context.Context, stop func() bool) {
	deadline := time.Now().Add(timeout) // before the timer starts: it fires no sooner
	t := time.AfterFunc(timeout, func() { cancel(tooLong) })
	return &handlerContext{Context: job, deadline: deadline, tooLong: tooLong}, t.Stop
}

// handlerContext is the job's context with the timeout's deadline. Done,
// Value and so context.Cause are the job context's own, so contexts derived
// from it are its children directly.
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
