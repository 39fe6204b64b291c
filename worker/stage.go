package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/baton-run/baton/internal/jsonb"
	"github.com/baton-run/baton/internal/store"
)

// stage runs one pipeline stage: its claim loop, handlers and heartbeats.
type stage struct {
	w        *Worker
	cfg      Stage
	handler  Handler
	log      *slog.Logger
	timeout  error // the cause a handler's context reports when it runs too long
	spanName string
	metrics  stageMetrics

	mu       sync.Mutex
	running  map[int64]*inflight // claimed and not yet recorded: heartbeats keep these leases (lease.go)
	slots    slots               // handler slots (slots.go)
	closing  bool                // shutting down: no more reservations
	draining bool                // shutting down: no job claimed ahead starts
	ahead    []task              // jobs claimed ahead, waiting for a slot (ahead.go)
	starting []task              // the claim loop's own: a claim's jobs to dispatch (startClaimed)
	caughtUp atomic.Bool         // the last claim found fewer due jobs than free slots
	handlers sync.WaitGroup
	// Handler goroutines (handlerLoop): goroutines counts them, idle hands
	// one waiting a job, retire ends one waiting, stopped (closed when the
	// worker stops) ends them all.
	goroutines int
	idle       chan task
	retire     chan struct{}
	stopped    chan struct{}
	wake       chan struct{} // a job may be due (hand-off from a stage of this worker)
	freed      chan struct{} // a slot became free
	alarm      *time.Timer   // wakes the stage when its earliest job not yet due becomes due
	alarmAt    time.Time
	// lookAhead says a job not due yet may have appeared (a hint said so,
	// the alarm rang, or a poll came): the next claim that catches up sets
	// the alarm (setAlarm). Other wakes cost no extra query.
	lookAhead atomic.Bool
	// floor is where the next claim starts reading the claim index (nil:
	// at its front); belowFloor, if set, is where the next claim starts
	// instead: a due job waits below the floor there (claim.go).
	floor      atomic.Pointer[claimFloor]
	belowFloor atomic.Pointer[claimFloor]
	// lookIsolated says an isolated job may wait in the queue (a hint from
	// the reaper, or a poll): the claim loop tries to claim one (alone.go).
	lookIsolated atomic.Bool
	// queueLimits are the queue's own global concurrency and rate, which
	// win over the stage's: learned from each limited claim and every poll
	// interval (limits set at run time). rate is the stage's own.
	queueLimits atomic.Pointer[queueLimits]
	rate        store.Rate

	completions chan *done // successes for the completer to commit
	deadlines   deadlines  // the stage's timer that ends runs past their timeout (timeout.go)

	// beatLease is the lease the heartbeats' cadence keeps (the shortest of
	// the stage's and its running jobs' own); beatSooner says a job with a
	// shorter one started (lease.go).
	beatLease  time.Duration
	beatSooner chan struct{}
}

// run is one claim of a job: lease tokens count the claims of each job.
type run struct{ id, token int64 }

// claimed is a job this worker holds a lease on: what its handler sees, and
// the lease token that fences every write recording its outcome.
type claimed struct {
	job   *Job
	token int64
	// traceParent is the W3C trace context the job was submitted or handed
	// off under ("" for none): its handler's span is a child of it.
	traceParent string
	// pickup is how long the job waited to be claimed, in database time.
	// A direct hand-off never waits in the queue: its pickup is the
	// statement that created it claimed, from its start (the job's
	// created_at) to its rows reaching the worker.
	pickup time.Duration
	// timeout and lease are the job's own (capped by the stage's
	// max_job_timeout and max_job_lease); 0: the stage's.
	timeout, lease time.Duration
}

func (c claimed) run() run { return run{c.job.ID, c.token} }

// inflight is a job this worker holds: its handler waits for a slot, runs,
// or has returned and its outcome waits to be recorded.
type inflight struct {
	token  int64
	cancel context.CancelCauseFunc
	lease  time.Duration // the job's own lease; 0: the stage's
	// ctx is the context its handler runs under (runUnder), and due its
	// deadline as the stage's timer counts it (timeout.go); 0 while no
	// handler runs under it.
	ctx handlerContext
	due atomic.Int64
}

func (s *stage) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

// start runs the handler of a job this worker has claimed: in a new slot,
// or (fromReserve) in one reserved for a direct hand-off.
func (s *stage) start(c claimed, fromReserve bool) {
	s.mu.Lock()
	t := s.takeLocked(c)
	s.beginLocked(fromReserve)
	s.mu.Unlock()
	s.dispatch(t)
}

// beginLocked counts a handler starting: in a free slot, or in one
// reserved for a direct hand-off.
func (s *stage) beginLocked(fromReserve bool) {
	s.slots.start(fromReserve)
	if !fromReserve {
		s.handlers.Add(1) // reserve counted a reserved slot's
	}
}

// takeLocked lists a claimed job as this worker's, with the context its
// handler will run under.
func (s *stage) takeLocked(c claimed) task {
	s.w.stats.claimed.Add(1)
	s.metrics.claimed.Inc()
	jctx, cancel := context.WithCancelCause(s.w.handlerCtx)
	in := s.listLocked(c.job.ID, c.token, c.lease, cancel)
	return task{ctx: jctx, in: in, c: c}
}

// dispatch hands a started job to a handler goroutine: one waiting for its
// next job, or a new one.
func (s *stage) dispatch(t task) {
	pickup := t.c.pickup
	if !t.queued.IsZero() {
		pickup += time.Since(t.queued) // it waited for a slot (ahead.go)
	}
	s.metrics.pickupSeconds.Observe(pickup.Seconds())
	select {
	case s.idle <- t: // a handler goroutine waiting for its next job takes it
	default:
		s.mu.Lock()
		s.goroutines++
		s.mu.Unlock()
		go s.handlerLoop(t)
	}
}

// task is a claimed job for a handler goroutine, with its context.
type task struct {
	ctx context.Context
	in  *inflight // its entry in the running set: cancel ends ctx (a lost lease, the timeout)
	c   claimed
	// queued is when a job claimed ahead began to wait for a slot (zero:
	// it started at its claim).
	queued time.Time
}

// handlerLoop runs jobs' handlers one after another: a goroutine is kept
// for the next job (a new one per job grew its stack anew each time). It
// ends when the stage has more goroutines than it may use, when pollTick
// retires it, or when the worker stops.
func (s *stage) handlerLoop(t task) {
	for {
		if !s.execute(t) {
			s.handlers.Done()
		}
		s.mu.Lock()
		surplus := s.goroutines > s.slots.goroutines()
		if surplus {
			s.goroutines--
		}
		s.mu.Unlock()
		if surplus {
			return
		}
		select {
		case t = <-s.idle:
		case <-s.retire:
			s.mu.Lock()
			s.goroutines--
			s.mu.Unlock()
			return
		case <-s.stopped:
			return
		}
	}
}

// listLocked lists a claimed job in the stage's running set. If this
// process claimed the job before (its lease expired while the process was
// frozen, say), the earlier run's lease is lost: it is stopped. A lease
// shorter than the heartbeats keep up with makes them come sooner.
func (s *stage) listLocked(id, token int64, lease time.Duration, cancel context.CancelCauseFunc) *inflight {
	if earlier := s.running[id]; earlier != nil && earlier.token != token {
		earlier.cancel(errLeaseLost)
	}
	in := &inflight{token: token, cancel: cancel, lease: lease}
	s.running[id] = in
	if lease > 0 && lease < s.beatLease {
		signal(s.beatSooner)
	}
	return in
}

// unlistLocked takes a job's run off the running set (not a later claim's).
func (s *stage) unlistLocked(r run) {
	if in := s.running[r.id]; in != nil && in.token == r.token {
		in.cancel(nil)
		delete(s.running, r.id)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// execute runs one job's handler under the stage timeout, with no
// transaction open, then records the outcome in one fenced write. A success
// goes to the completer, which settles the job once it is committed
// (committing); the goroutine does not wait for that commit, and takes its
// next job. Every other outcome is settled here.
func (s *stage) execute(t task) (committing bool) {
	ctx, c, job := t.ctx, t.c, t.c.job
	defer func() {
		if !committing {
			s.settle(c)
		}
	}()
	sctx, span := s.startSpan(ctx, job, c.traceParent)
	timeout, tooLong := s.cfg.Timeout.D(), s.timeout
	if c.timeout > 0 {
		timeout, tooLong = c.timeout, fmt.Errorf("timeout: handler ran longer than the job's own %s", c.timeout)
	}
	began := time.Now()
	hctx := s.runUnder(t.in, sctx, began, timeout, tooLong)
	job.exec = execution{stage: s, token: c.token, began: began, span: trace.SpanContextFromContext(sctx)}
	out, err := safeHandle(hctx, s.handler, job)
	ran := time.Since(began) // monotonic: the handler's own time, whatever the batches did
	s.metrics.handlerSeconds.Observe(ran.Seconds())
	cause := context.Cause(hctx)
	t.in.due.Store(0) // over: the stage's timer leaves it be
	if err != nil && cause != nil {
		err = cause // report the timeout, not the handler's reaction to it
	}
	endSpan(span, err)
	s.mu.Lock()
	size := s.slots.end(ran)
	next, ok := s.nextAheadLocked() // a job claimed ahead takes the slot
	s.mu.Unlock()
	s.metrics.slots.Set(float64(size))
	if ok {
		s.dispatch(next)
	}
	signal(s.freed)
	if job.exec.wasCompleted() {
		// The handler completed the job in its own transaction (CompleteTx):
		// see whether that committed. (A committed completion also ends the
		// lease, which may have stopped the handler's context.)
		s.afterCompleteTx(c, err, ran)
		return
	}
	if lost := context.Cause(ctx); lost != nil && lost != tooLong {
		// The lease moved on (reaped, canceled, or released at shutdown): any
		// write would be fenced, so make none.
		if !errors.Is(lost, errReleased) {
			s.w.stats.leasesLost.Add(1)
			s.metrics.leasesLost.Inc()
			s.jobLog(job).Warn("handler stopped: lease lost", "cause", lost)
		}
		return
	}
	if err == nil && s.cfg.FanOut {
		err = fanOutResult(out)
	}
	if err != nil {
		s.fail(c, err, ran)
		return
	}
	s.completions <- &done{claimed: c, result: out, ran: ran, nextTrace: store.TraceParentOf(sctx)}
	return true
}

// settle ends a job's time in the stage once its outcome is recorded, or
// will not be: heartbeats no longer keep its lease, the claim loop and the
// drain hear of it, and an isolated job's lone run is over.
func (s *stage) settle(c claimed) {
	s.mu.Lock()
	s.unlistLocked(c.run())
	s.mu.Unlock()
	signal(s.freed)
	signal(s.w.settled)
	if r := s.w.aloneRun.Load(); r != nil && *r == c.run() && s.w.aloneRun.CompareAndSwap(r, nil) {
		s.w.leaveAlone(true) // its lone run is over (not an earlier run's end)
	}
}

// jobLog is the stage's logger with the job named; built only when there is
// something to log, since most jobs log nothing.
func (s *stage) jobLog(job *Job) *slog.Logger {
	return s.log.With("job_id", job.ID, "attempt", job.Attempt)
}

func safeHandle(ctx context.Context, h Handler, job *Job) (out json.RawMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	out, err = h.Handle(ctx, job)
	if err == nil {
		out, err = result(out, "handler result")
	}
	return out, err
}

// fanOutResult checks a fan_out stage's result: an array of at most
// MaxFanOut elements.
func fanOutResult(out json.RawMessage) error {
	n, ok := jsonb.ArrayLen(out)
	switch {
	case !ok:
		return fmt.Errorf("fan_out: the result must be a JSON array, not %s", truncate(out, 60))
	case n > MaxFanOut:
		return fmt.Errorf("fan_out: the result has %d elements, more than %d", n, MaxFanOut)
	}
	return nil
}
