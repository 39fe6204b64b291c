package worker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/baton-run/baton/db"
)

// Queue ties a queue's name to the type of its jobs' payloads, for both
// sides: submits encode an Args, and its handlers (Queue.Handler, Then)
// decode one, so the two cannot disagree. Declare one per queue, once:
//
//	var Emails = worker.Queue[Email]{Name: "emails"}
type Queue[Args any] struct {
	// Name is the queue's name (db.NewJob.Queue).
	Name string
}

// Submit submits a job of args to the queue on c (a pool, a connection or
// your transaction), and returns its id. Each of opts may set the job's
// other fields (Priority, Delay, UniqueKey, Tags, …).
func (q Queue[Args]) Submit(ctx context.Context, c db.Conn, args Args, opts ...func(*db.NewJob)) (int64, error) {
	payload, err := json.Marshal(args)
	if err != nil {
		return 0, fmt.Errorf("%w: queue %s: encoding the payload: %w", db.ErrInvalid, q.Name, err)
	}
	job := db.NewJob{Queue: q.Name, Payload: payload}
	for _, o := range opts {
		o(&job)
	}
	job.Queue, job.Payload = q.Name, payload
	ids, err := db.Submit(ctx, c, job)
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// Handler is a Go handler of the queue's jobs that hands nothing on: the
// stage that names it must work the queue and have no next. A payload that
// does not decode into Args fails permanently.
func (q Queue[Args]) Handler(fn func(ctx context.Context, job *Job, args Args) error) Handler {
	return &queueHandler{queue: q.Name, run: Typed(func(ctx context.Context, job *Job, args Args) (any, error) {
		return nil, fn(ctx, job, args)
	})}
}

// Then is a Go handler of q's jobs whose result is the payload of a job of
// next: the stage that names it must work q and hand on to next, which
// worker.New checks.
func Then[In, Out any](q Queue[In], next Queue[Out], fn func(ctx context.Context, job *Job, args In) (Out, error)) Handler {
	return &queueHandler{queue: q.Name, next: next.Name, run: Typed(fn)}
}

// queueHandler is a Go handler bound to its queues, so that New can refuse
// a stage that names it for other ones.
type queueHandler struct {
	queue, next string
	run         HandlerFunc
}

func (h *queueHandler) Handle(ctx context.Context, job *Job) (json.RawMessage, error) {
	return h.run(ctx, job)
}

// check refuses a stage that works other queues than h's.
func (h *queueHandler) check(st Stage) error {
	switch {
	case st.Queue != h.queue:
		return fmt.Errorf("%w: its Go handler %q works queue %s", ErrPipeline, st.Handler.Go, h.queue)
	case st.Next != h.next && h.next == "":
		return fmt.Errorf("%w: it hands on to %s, but its Go handler %q hands nothing on (use worker.Then)", ErrPipeline, st.Next, st.Handler.Go)
	case st.Next != h.next:
		return fmt.Errorf("%w: it hands on to %q, but its Go handler %q hands on to %s", ErrPipeline, st.Next, st.Handler.Go, h.next)
	}
	return nil
}
