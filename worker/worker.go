package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/baton-run/baton/db"
)

// Reasons a running handler's context is cancelled by the worker itself.
var (
	// errLeaseLost: the heartbeat found the job no longer ours (reaped or canceled).
	errLeaseLost = fmt.Errorf("job %w", db.ErrLeaseLost)
	// errReleased: shutdown grace ran out and the lease was handed back.
	errReleased = errors.New("worker shut down: lease released")
)

// dbTimeout bounds each write the worker makes after a claim, independent of
// shutdown, so a completion is never abandoned half-way by a signal.
const dbTimeout = 10 * time.Second

// Config configures a Worker.
type Config struct {
	// Pipeline is the stages to run. Required.
	Pipeline *Pipeline
	// ID names this replica in leases and history. Defaults to hostname-pid.
	ID string
	// Logger receives the worker's logs. Defaults to slog.Default().
	Logger *slog.Logger
	// MaintenanceInterval is how often the reaper and promotion run. Defaults to 1s.
	MaintenanceInterval time.Duration
	// Retention is how long finished jobs are kept where their queue sets
	// none. Defaults to DefaultRetention.
	Retention Retention
	// PollOnly turns off LISTEN/NOTIFY wake-ups (for PgBouncer in transaction
	// pooling mode, which cannot LISTEN): stages then find new jobs by polling.
	PollOnly bool
	// TracerProvider makes the spans of handler runs. Defaults to OpenTelemetry's
	// global provider, which does nothing unless the program configures it.
	TracerProvider trace.TracerProvider
}

// Stats counts what a worker did; read it with Worker.Stats.
type Stats struct {
	Claimed    int64 // jobs claimed
	Succeeded  int64 // completions committed
	Failed     int64 // failed attempts recorded (retrying or dead)
	LeasesLost int64 // fenced writes that changed nothing: the lease had moved on
	Released   int64 // leases handed back at shutdown
	// ClaimBatches and CompleteBatches count the claim and completion
	// statements that carried at least one job: Claimed / ClaimBatches is
	// the mean claim batch.
	ClaimBatches, CompleteBatches int64
}

// Worker is one replica: it runs every stage of a pipeline and the reaper.
type Worker struct {
	pool   *pgxpool.Pool
	cfg    Config
	log    *slog.Logger
	stages map[string]*stage
	tracer trace.Tracer
	// handlerCtx is the parent of every handler's context (set by Run).
	handlerCtx context.Context
	// guard kills exec handlers' processes if this worker dies (see guard.go).
	guard guard
	// isolating is set while this worker holds an isolated job (aloneRun),
	// from its claim until its lone run is over: no stage claims meanwhile
	// (alone.go). settled signals that a job left a stage, for the drain.
	isolating atomic.Bool
	aloneRun  atomic.Pointer[run] // the held job's claim
	alone     sync.WaitGroup
	settled   chan struct{}
	stats     struct {
		claimed, succeeded, failed, leasesLost, released, claimBatches, completeBatches atomic.Int64
	}
}

// New builds a worker. It fails if a stage names a Go handler that is not registered.
func New(pool *pgxpool.Pool, cfg Config) (*Worker, error) {
	if cfg.Pipeline == nil {
		return nil, fmt.Errorf("%w: no pipeline", ErrPipeline)
	}
	cfg.ID = cmp.Or(cfg.ID, DefaultID())
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.MaintenanceInterval = cmp.Or(cfg.MaintenanceInterval, time.Second)
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	w := &Worker{
		pool: pool, cfg: cfg, log: cfg.Logger.With("worker", cfg.ID), stages: map[string]*stage{}, settled: make(chan struct{}, 1),
		tracer: cfg.TracerProvider.Tracer("github.com/baton-run/baton/worker"),
	}
	for _, st := range cfg.Pipeline.Stages {
		h, err := handlerFor(st.Handler, &w.guard)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", st.Queue, err)
		}
		w.stages[st.Queue] = &stage{
			w: w, cfg: st, handler: h, log: w.log.With("queue", st.Queue),
			timeout: fmt.Errorf("timeout: handler ran longer than %s", st.Timeout.D()),
			metrics: newStageMetrics(st.Queue), spanName: "baton.handle " + st.Queue,
			running: map[int64]*inflight{}, wake: make(chan struct{}, 1), freed: make(chan struct{}, 1),
			completions: make(chan *done, st.Concurrency),
		}
	}
	return w, nil
}

// DefaultID names a replica by host and process id.
func DefaultID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", cmp.Or(host, "worker"), os.Getpid())
}

// PoolSize is the connection pool size that fits a pipeline: enough for
// claims, completions and heartbeats to overlap, but near the core count,
// since more connections than cores make Postgres slower, not faster.
func PoolSize(p *Pipeline) int32 {
	total := 0
	for _, s := range p.Stages {
		total += s.Concurrency
	}
	return int32(min(total, max(4, 2*runtime.GOMAXPROCS(0))) + len(p.Stages) + 2)
}

// Stats returns counters of what the worker has done so far.
func (w *Worker) Stats() Stats {
	return Stats{
		Claimed: w.stats.claimed.Load(), Succeeded: w.stats.succeeded.Load(), Failed: w.stats.failed.Load(),
		LeasesLost: w.stats.leasesLost.Load(), Released: w.stats.released.Load(),
		ClaimBatches: w.stats.claimBatches.Load(), CompleteBatches: w.stats.completeBatches.Load(),
	}
}

// Run works the pipeline until ctx is done, then shuts down gracefully: it
// stops claiming, waits up to the pipeline's shutdown grace for in-flight
// handlers, releases the leases of those still running, and returns nil.
func (w *Worker) Run(ctx context.Context) error {
	bg := context.WithoutCancel(ctx)
	for _, st := range w.cfg.Pipeline.Stages {
		qctx, cancel := context.WithTimeout(bg, dbTimeout)
		err := db.New(w.pool).QueueCreate(qctx, st.Queue)
		cancel()
		if err != nil {
			return fmt.Errorf("registering queue %s: %w", st.Queue, db.MapError(err))
		}
	}
	if slices.ContainsFunc(w.cfg.Pipeline.Stages, func(s Stage) bool { return len(s.Handler.Exec) > 0 }) {
		if err := w.guard.start(w.log); err != nil {
			return err
		}
		defer w.guard.stop()
	}
	w.log.Info("worker started", "stages", len(w.stages), "pool_max_conns", w.pool.Config().MaxConns, "listen", !w.cfg.PollOnly)

	// Handlers run under their own context: shutdown must not cancel them
	// until the grace period is over.
	handlerCtx, cancelHandlers := context.WithCancel(bg)
	defer cancelHandlers()
	w.handlerCtx = handlerCtx
	hbCtx, stopHeartbeats := context.WithCancel(bg)
	var loops, heartbeats, completers sync.WaitGroup
	for _, s := range w.stages {
		loops.Go(func() { s.claimLoop(ctx) })
		heartbeats.Go(func() { s.heartbeatLoop(hbCtx) })
		completers.Go(func() { s.completer(s.completions) })
	}
	loops.Go(func() { RunMaintenance(ctx, w.pool, w.cfg.MaintenanceInterval, w.cfg.Retention, w.log) })
	if !w.cfg.PollOnly {
		loops.Go(func() { w.listen(ctx) })
	}
	loops.Wait()
	w.alone.Wait() // a held isolated job not yet started is given back
	for _, s := range w.stages {
		s.mu.Lock()
		s.closing = true
		if s.alarm != nil {
			s.alarm.Stop()
		}
		s.mu.Unlock()
	}

	// Draining: heartbeats continue so in-flight jobs keep their leases.
	w.log.Info("draining", "in_flight", w.inFlight(), "grace", w.cfg.Pipeline.ShutdownGrace.D())
	drained := make(chan struct{})
	go func() {
		for _, s := range w.stages {
			s.handlers.Wait()
		}
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(w.cfg.Pipeline.ShutdownGrace.D()):
		for _, s := range w.stages {
			s.releaseAll(bg)
		}
		<-drained
	}
	stopHeartbeats()
	heartbeats.Wait()
	for _, s := range w.stages {
		close(s.completions) // every handler has returned
	}
	completers.Wait()
	st := w.Stats()
	w.log.Info("worker stopped", "succeeded", st.Succeeded, "failed", st.Failed,
		"leases_lost", st.LeasesLost, "released", st.Released)
	return nil
}

func (w *Worker) inFlight() int {
	n := 0
	for _, s := range w.stages {
		n += s.count()
	}
	return n
}

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
	running  map[int64]*inflight // claimed and not yet recorded: heartbeats keep these leases
	busy     int                 // handlers running now, and slots reserved for direct hand-offs
	reserved int                 // slots reserved for direct hand-offs, not yet started
	closing  bool                // shutting down: no more reservations
	caughtUp atomic.Bool         // the last claim found fewer due jobs than free slots
	handlers sync.WaitGroup
	wake     chan struct{} // a job may be due (hand-off from a stage of this worker)
	freed    chan struct{} // a slot became free
	alarm    *time.Timer   // wakes the stage when its earliest job not yet due becomes due
	alarmAt  time.Time
	// lookAhead says a job not due yet may have appeared (a hint said so,
	// the alarm rang, or a poll came): the next claim that catches up sets
	// the alarm (setAlarm). Other wakes cost no extra query.
	lookAhead atomic.Bool
	// lookIsolated says an isolated job may wait in the queue (a hint from
	// the reaper, or a poll): the claim loop tries to claim one (alone.go).
	lookIsolated atomic.Bool

	completions chan *done // successes for the completer to commit
}

// run is one claim of a job: lease tokens count the claims of each job.
type run struct{ id, token int64 }

// inflight is a job whose handler is running.
type inflight struct {
	token  int64
	cancel context.CancelCauseFunc
}

func (s *stage) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

// free is how many jobs the stage may claim now. A slot frees when its
// handler returns, not when its outcome commits, so the next claim overlaps
// the completion commit; jobs waiting for that commit are bounded by the
// slot count as well.
func (s *stage) free() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.freeLocked()
}

func (s *stage) freeLocked() int {
	if s.w.isolating.Load() {
		return 0 // an isolated job is held or runs alone on this worker
	}
	return min(s.cfg.Concurrency-s.busy, 2*s.cfg.Concurrency-len(s.running)-s.reserved)
}

// reserve holds up to n free slots for jobs that a completion in this
// process hands off to this stage already claimed (a direct hand-off). It
// holds none while the stage has a backlog, so that jobs already waiting in
// the queue (by priority, from every replica) go first, and none once
// shutdown began. Each held slot is later started or unreserved.
func (s *stage) reserve(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || !s.caughtUp.Load() {
		return 0
	}
	k := max(0, min(n, s.freeLocked()))
	s.busy += k
	s.reserved += k
	s.handlers.Add(k) // the drain at shutdown waits for reserved slots too
	return k
}

// unreserve gives back k reserved slots that no job took.
func (s *stage) unreserve(k int) {
	if k == 0 {
		return
	}
	s.mu.Lock()
	s.busy -= k
	s.reserved -= k
	s.mu.Unlock()
	for range k {
		s.handlers.Done()
	}
	signal(s.freed)
	signal(s.w.settled)
}

// start runs the handler of a job this worker has claimed: in a new slot,
// or (fromReserve) in one reserved for a direct hand-off. pickup is how long
// the job waited to be claimed.
func (s *stage) start(job *Job, token int64, traceParent *string, pickup time.Duration, fromReserve bool) {
	s.w.stats.claimed.Add(1)
	s.metrics.claimed.Inc()
	s.metrics.pickupSeconds.Observe(pickup.Seconds())
	jctx, cancel := context.WithCancelCause(s.w.handlerCtx)
	s.mu.Lock()
	s.listLocked(job.ID, token, cancel)
	if fromReserve {
		s.reserved-- // its busy slot and handlers count were taken by reserve
	} else {
		s.busy++
		s.handlers.Add(1)
	}
	s.mu.Unlock()
	go func() {
		defer s.handlers.Done()
		s.execute(jctx, job, token, traceParent)
	}()
}

// listLocked lists a claimed job in the stage's running set. If this
// process claimed the job before (its lease expired while the process was
// frozen, say), the earlier run's lease is lost: it is stopped.
func (s *stage) listLocked(id, token int64, cancel context.CancelCauseFunc) {
	if earlier := s.running[id]; earlier != nil && earlier.token != token {
		earlier.cancel(errLeaseLost)
	}
	s.running[id] = &inflight{token: token, cancel: cancel}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// claimLoop claims as many jobs as there are free slots and starts them. When
// a claim fills every free slot there may be more due, so it claims again as
// soon as a slot frees; otherwise it waits for the poll interval or a wake-up.
func (s *stage) claimLoop(ctx context.Context) {
	poll := time.NewTicker(s.w.cfg.Pipeline.PollInterval.D())
	defer poll.Stop()
	backlog := true
	s.lookAhead.Store(true)
	s.lookIsolated.Store(true)
	for ctx.Err() == nil {
		if free := s.free(); free > 0 {
			n, err := s.claim(ctx, free)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("claiming jobs", "error", err)
				backlog = false
			case err == nil:
				backlog = n == free
			}
			s.caughtUp.Store(!backlog)
			if err == nil && !backlog && s.lookAhead.Swap(false) {
				s.setAlarm(ctx)
			}
		}
		if s.lookIsolated.Swap(false) {
			s.claimIsolated(ctx)
		}
		for {
			select {
			case <-ctx.Done():
			case <-poll.C:
				s.lookAhead.Store(true)
				s.lookIsolated.Store(true)
			case <-s.wake:
			case <-s.freed:
				if !backlog {
					continue // an idle queue is polled, not re-claimed per completion
				}
			}
			break
		}
	}
}

// setAlarm asks how long until the queue's earliest job that is not due yet
// (delayed, or waiting for its retry) becomes due, and wakes the stage then:
// such a job starts on time rather than at the next poll. The database says
// how long, so that no clock but its own decides when a job is due.
func (s *stage) setAlarm(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	ms, err := db.New(s.w.pool).JobNextDue(qctx, s.cfg.Queue)
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("looking for the next due job", "error", db.MapError(err))
	case err == nil && ms >= 0:
		s.wakeIn(time.Duration(ms) * time.Millisecond)
	}
}

// wakeIn wakes the stage after d, unless it is to wake earlier already.
func (s *stage) wakeIn(d time.Duration) {
	at := time.Now().Add(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alarm != nil && !s.alarmAt.After(at) {
		return
	}
	if s.alarm != nil {
		s.alarm.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		if s.alarm == t {
			s.alarm = nil
		}
		s.mu.Unlock()
		s.lookAhead.Store(true) // for the job due after this one
		signal(s.wake)
	})
	s.alarm, s.alarmAt = t, at
}

func (s *stage) claim(ctx context.Context, n int) (int, error) {
	// Not cancelled by shutdown: a claim cut off after its commit would strand
	// its jobs until their leases expire.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	began := time.Now()
	rows, err := db.New(s.w.pool).JobClaim(ctx, db.JobClaimParams{
		QueueName: s.cfg.Queue, MaxJobs: int32(n), LeaseMs: s.cfg.Lease.D().Milliseconds(), WorkerID: s.w.cfg.ID,
		MaxAttempts: int32(s.cfg.MaxAttempts),
	})
	s.metrics.claimSeconds.Observe(time.Since(began).Seconds())
	if err != nil {
		return 0, db.MapError(err)
	}
	if len(rows) > 0 {
		s.w.stats.claimBatches.Add(1)
	}
	for _, r := range rows {
		job := &Job{
			ID: r.ID, Queue: r.Queue, Payload: r.Payload, Attempt: int(r.Attempts), MaxAttempts: int(r.MaxAttempts),
			Priority: int(r.Priority), ParentID: r.ParentID, CreatedAt: r.CreatedAt,
		}
		s.start(job, r.LeaseToken, r.TraceParent, r.StartedAt.Sub(r.RunAt), false)
	}
	return len(rows), nil
}

// execute runs one job's handler under the stage timeout, with no
// transaction open, then records the outcome in one fenced write.
func (s *stage) execute(ctx context.Context, job *Job, token int64, traceParent *string) {
	defer func() {
		s.mu.Lock()
		if in := s.running[job.ID]; in != nil && in.token == token { // not a later claim's
			in.cancel(nil)
			delete(s.running, job.ID)
		}
		s.mu.Unlock()
		signal(s.freed)
		signal(s.w.settled)
		if r := s.w.aloneRun.Load(); r != nil && *r == (run{job.ID, token}) && s.w.aloneRun.CompareAndSwap(r, nil) {
			s.w.leaveAlone() // its lone run is over (not an earlier run's end)
		}
	}()
	sctx, span := s.startSpan(ctx, job, deref(traceParent))
	hctx, cancel := context.WithTimeoutCause(sctx, s.cfg.Timeout.D(), s.timeout)
	began := time.Now()
	out, err := safeHandle(hctx, s.handler, job)
	ran := time.Since(began) // monotonic: the handler's own time, whatever the batches did
	s.metrics.handlerSeconds.Observe(ran.Seconds())
	cause := context.Cause(hctx)
	cancel()
	if err != nil && cause != nil {
		err = cause // report the timeout, not the handler's reaction to it
	}
	endSpan(span, err)
	s.mu.Lock()
	s.busy--
	s.mu.Unlock()
	signal(s.freed)
	if lost := context.Cause(ctx); lost != nil {
		// The lease moved on (reaped, canceled, or released at shutdown): any
		// write would be fenced, so make none.
		if !errors.Is(lost, errReleased) {
			s.w.stats.leasesLost.Add(1)
			s.metrics.leasesLost.Inc()
			s.jobLog(job).Warn("handler stopped: lease lost", "cause", lost)
		}
		return
	}
	if err != nil {
		s.fail(job, token, err, ran)
		return
	}
	flushed := make(chan struct{})
	s.completions <- &done{job: job, token: token, result: out, ran: ran, traceParent: db.TraceParentOf(sctx), flushed: flushed}
	<-flushed
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
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

// fail records a failed attempt, whose handler ran for ran: retrying after
// backoff, or dead.
func (s *stage) fail(job *Job, token int64, herr error, ran time.Duration) {
	// Not cancelled by shutdown: the attempt's outcome must be recorded.
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	delay := backoff(job.Attempt, s.cfg.Backoff.D(), s.cfg.MaxBackoff.D())
	row, err := retryDB(ctx, func() (db.JobFailRow, error) {
		return db.New(s.w.pool).JobFail(ctx, db.JobFailParams{
			ID: job.ID, LeaseToken: token, Error: errorText(herr), Permanent: IsPermanent(herr),
			DelayMs: delay.Milliseconds(), WorkerID: s.w.cfg.ID, RunUs: ran.Microseconds(),
		})
	})
	switch {
	case errors.Is(err, db.ErrNotFound):
		s.w.stats.leasesLost.Add(1)
		s.metrics.fenced.Inc()
		s.jobLog(job).Warn("failure fenced: lease lost, nothing committed", "error", herr)
	case err != nil:
		s.jobLog(job).Error("recording the failure failed; the job will run again when its lease expires", "error", err, "failure", herr)
	default:
		s.w.stats.failed.Add(1)
		metricFinished.WithLabelValues(s.cfg.Queue, string(row.State)).Inc()
		s.jobLog(job).Info("attempt failed", "state", row.State, "error", herr)
		if row.State == db.BatonJobStateRetrying {
			s.wakeIn(delay) // the retry starts on time, not at the next poll
		}
	}
}

// retryDB retries a fenced, idempotent write while the database is
// unavailable, until ctx ends.
func retryDB[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	delay := 50 * time.Millisecond
	for {
		v, err := fn()
		err = db.MapError(err)
		if err == nil || !errors.Is(err, db.ErrUnavailable) || ctx.Err() != nil {
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

// heartbeatLoop extends the leases of this stage's running jobs every lease/3
// and stops the handlers of jobs whose lease is gone.
func (s *stage) heartbeatLoop(ctx context.Context) {
	every(ctx, s.cfg.Lease.D()/3, func() { s.heartbeat(ctx) })
}

func (s *stage) heartbeat(ctx context.Context) {
	ids, tokens := s.snapshot()
	if len(ids) == 0 {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	kept, err := db.New(s.w.pool).JobHeartbeat(hctx, db.JobHeartbeatParams{
		Ids: ids, LeaseTokens: tokens, LeaseMs: s.cfg.Lease.D().Milliseconds(),
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("heartbeat failed", "error", db.MapError(err), "jobs", len(ids))
		}
		return
	}
	if len(kept) == len(ids) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range ids {
		if in := s.running[id]; in != nil && in.token == tokens[i] && !slices.Contains(kept, id) {
			in.cancel(errLeaseLost)
		}
	}
}

// snapshot lists running jobs in id order, so batch writes lock rows in a
// consistent order.
func (s *stage) snapshot() (ids, tokens []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.running {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		tokens = append(tokens, s.running[id].token)
	}
	return ids, tokens
}

// releaseAll hands the leases of still-running jobs back to the queue, then
// stops their handlers; their own writes are then fenced.
func (s *stage) releaseAll(ctx context.Context) {
	ids, tokens := s.snapshot()
	if len(ids) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	released, err := db.New(s.w.pool).JobReleaseMany(rctx, db.JobReleaseManyParams{Ids: ids, LeaseTokens: tokens, WorkerID: s.w.cfg.ID})
	if err != nil {
		s.log.Error("releasing leases failed; they come back when they expire", "error", db.MapError(err))
	}
	s.w.stats.released.Add(int64(len(released)))
	s.log.Warn("shutdown grace over: released leases of unfinished jobs", "released", len(released), "running", len(ids))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range s.running {
		in.cancel(errReleased)
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

// errorText is an error as the row and the history keep it: at most 4 KiB
// (its end, where the cause usually is), cut on a character boundary, in
// valid UTF-8 without NUL, which PostgreSQL's text refuses. Handlers' text
// (stderr above all) may hold anything; the failure must still be recorded.
func errorText(err error) string {
	const max = 4 << 10
	s := strings.ReplaceAll(strings.ToValidUTF8(err.Error(), "\uFFFD"), "\x00", "\uFFFD")
	if len(s) > max {
		cut := len(s) - max
		for cut < len(s) && !utf8.RuneStart(s[cut]) {
			cut++
		}
		s = "…" + s[cut:]
	}
	return s
}
