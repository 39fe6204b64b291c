package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/baton-run/baton/internal/jsonb"
	"github.com/baton-run/baton/internal/store"
)

// Job is what a handler sees of the job it runs.
type Job struct {
	ID          int64
	Queue       string
	Payload     json.RawMessage
	Attempt     int // 1 for the first run
	MaxAttempts int
	Priority    int
	ParentID    *int64 // the job that handed off to this one, if any
	CreatedAt   time.Time
	Tags        []string // the job's tags, which its journey keeps (nil for none)
	Group       string   // the job's group, which its journey keeps ("" for none)

	exec execution // the run, for CompleteTx (in the Job: no allocation of its own)
}

// Handler runs one job. Its result (valid JSON, or nil for null) becomes the
// payload of the next stage's job. An error fails the attempt; wrap it with
// Permanent to skip the remaining attempts.
type Handler interface {
	Handle(ctx context.Context, job *Job) (json.RawMessage, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *Job) (json.RawMessage, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, job *Job) (json.RawMessage, error) {
	return f(ctx, job)
}

// Typed adapts a function over decoded input and output types to a Handler:
// the payload is decoded into In (a payload that does not decode fails
// permanently) and the Out value is encoded as the result.
func Typed[In, Out any](fn func(ctx context.Context, job *Job, in In) (Out, error)) HandlerFunc {
	return func(ctx context.Context, job *Job) (json.RawMessage, error) {
		var in In
		if err := json.Unmarshal(job.Payload, &in); err != nil {
			return nil, Permanent(fmt.Errorf("decoding payload: %w", err))
		}
		out, err := fn(ctx, job, in)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, Permanent(fmt.Errorf("encoding result: %w", err))
		}
		return b, nil
	}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks a handler error as not worth retrying: the job goes
// straight to dead, keeping the error text.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p) || errors.Is(err, errUnreadable)
}

type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return "snoozed for " + e.d.String() }

// Snooze, returned by a handler as its error, sends the job back to wait for
// d without using an attempt: its handler runs again then. A stage's
// max_snoozes bounds how often one job may (default 100); past it, the
// attempt fails. (An exec handler snoozes by exiting with code 75 and
// printing {"snooze": "30s"}; an http handler by answering 429 or 503 with
// Retry-After.)
func Snooze(d time.Duration) error { return &snoozeError{d: min(max(d, 0), store.MaxDelay)} }

type cancelError struct{ err error }

func (e *cancelError) Error() string {
	if e.err == nil {
		return "canceled by its handler"
	}
	return "canceled by its handler: " + e.err.Error()
}

func (e *cancelError) Unwrap() error { return e.err }

// Cancel, returned by a handler as its error, ends the job as canceled: not
// dead, with no attempt left to run, err (which may be nil) as its last
// error. (An exec handler cancels by exiting with code 75 and printing
// {"cancel": "why"}; an http handler by answering 410 Gone.)
func Cancel(err error) error { return &cancelError{err: err} }

// Handlers are the Go handlers a pipeline file may name, as
// `handler: {go: name}`; a Worker takes them in its Config:
//
//	worker.New(pool, worker.Config{Pipeline: p, Handlers: worker.Handlers{"resize": resize}})
type Handlers map[string]Handler

// handlerFor builds the handler a stage names, from goHandlers for a Go
// handler; exec handlers list their processes with g, http handlers send
// the trace context with propagator.
func handlerFor(st Stage, g *guard, goHandlers Handlers, propagator propagation.TextMapPropagator) (Handler, error) {
	switch spec := st.Handler; {
	case len(spec.Exec) > 0:
		return &execHandler{argv: spec.Exec, guard: g, env: handlerEnv(os.Environ(), st.Env)}, nil
	case spec.HTTP != nil:
		return newHTTPHandler(*spec.HTTP, st.ceiling(), propagator), nil
	case spec.Go != "":
		h := goHandlers[spec.Go]
		if h == nil {
			return nil, fmt.Errorf("%w: no Go handler named %q in the worker's Handlers", ErrPipeline, spec.Go)
		}
		if q, ok := h.(*queueHandler); ok {
			if err := q.check(st); err != nil {
				return nil, err
			}
		}
		return h, nil
	}
	return nil, fmt.Errorf("%w: stage has no handler", ErrPipeline)
}

// result normalises handler output: empty means null; anything else must
// be JSON that jsonb can store, of at most maxOutput bytes, as written and
// with its numbers written out in full (what the next stage's job and every
// read of the result would be). Checking here turns what would fail the
// completion statement, or jam every later read, into a clear failed attempt.
func result(out []byte, source string) (json.RawMessage, error) {
	out = bytes.TrimSpace(out)
	switch {
	case len(out) == 0:
		return json.RawMessage("null"), nil
	case len(out) > maxOutput:
		return nil, fmt.Errorf("%s: %w", source, errTooLarge)
	}
	switch err := jsonb.Check(out, maxOutput); {
	case errors.Is(err, jsonb.ErrSyntax):
		return nil, fmt.Errorf("%s is not valid JSON: %q", source, truncate(out, 200))
	case errors.Is(err, jsonb.ErrExpands):
		return nil, fmt.Errorf("%s: result larger than %d bytes once its numbers are written out in full", source, maxOutput)
	case err != nil:
		return nil, fmt.Errorf("%s cannot be stored: %w", source, err)
	}
	return json.RawMessage(out), nil
}
