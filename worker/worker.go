package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/store"
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
	// Secrets are texts never stored in a job's error: a handler may print
	// whatever it can read (a command can read its worker's environment in
	// /proc), and errors are readable by the reporting role. The password of
	// the worker's database is always among them; texts shorter than 8 bytes
	// are not (they would blot out ordinary words).
	Secrets []string
	// ReaderLimits bound the transactions of the reporting role's sessions;
	// maintenance ends those past them. Defaults to DefaultReaderLimits.
	ReaderLimits ReaderLimits
	// PollOnly turns off LISTEN/NOTIFY wake-ups: stages then find new jobs
	// by polling. Always on for a pool connected with Pooler:
	// TransactionPooler (PgBouncer in transaction mode cannot LISTEN).
	PollOnly bool
	// TracerProvider makes the spans of handler runs. Defaults to OpenTelemetry's
	// global provider, which does nothing unless the program configures it.
	TracerProvider trace.TracerProvider
	// Propagator carries a run's trace context to an http handler's
	// endpoint (OTEL_PROPAGATORS, for the baton command). Defaults to W3C
	// trace context.
	Propagator propagation.TextMapPropagator
	// Handlers are the Go handlers the pipeline may name. Defaults to none.
	Handlers Handlers
	// Metrics is where the worker registers its Prometheus metrics
	// (baton_jobs_claimed_total and the rest, docs/operations.md). A registry
	// takes one Worker's: give each Worker of a process its own
	// (prometheus.NewRegistry), or prometheus.DefaultRegisterer for the one
	// Worker of a program. Defaults to none: the metrics are kept, not exported.
	Metrics prometheus.Registerer
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
	pool    *pgxpool.Pool
	cfg     Config
	log     *slog.Logger
	stages  map[string]*stage
	tracer  trace.Tracer
	metrics *metrics
	redact  *strings.Replacer // Config.Secrets, out of errors
	// handlerCtx is the parent of every handler's context (set by Run): it
	// carries Run's values, and is never canceled.
	handlerCtx context.Context
	// tracingOff says the TracerProvider is OpenTelemetry's no-op: a run
	// then starts no span, and carries on the trace context it came with.
	tracingOff bool
	// guard kills exec handlers' processes if this worker dies (see guard.go).
	guard guard
	// isolating is set while this worker looks for an isolated job or holds
	// one, until its lone run is over: one at a time. aloneRun is the held
	// job's claim: no stage claims while it is set (alone.go). settled
	// signals that a job left a stage, for the drain.
	isolating atomic.Bool
	aloneRun  atomic.Pointer[run]
	alone     sync.WaitGroup
	settled   chan struct{}
	// working is set while Run's stages claim: from start-up to the drain.
	working atomic.Bool
	stats   struct {
		claimed, succeeded, failed, leasesLost, released, claimBatches, completeBatches atomic.Int64
		floorChecks, floorlessClaims                                                    atomic.Int64 // for the tests
	}
}

// New builds a worker. It fails (ErrPipeline) if the pipeline is not valid
// (Pipeline.Validate, which also fills in its defaults) or a stage names a
// Go handler that is not in cfg.Handlers, and if cfg.Metrics holds another
// Worker's metrics.
func New(pool *pgxpool.Pool, cfg Config) (*Worker, error) {
	if cfg.Pipeline == nil {
		return nil, fmt.Errorf("%w: no pipeline", ErrPipeline)
	}
	if err := cfg.Pipeline.Validate(); err != nil { // a Pipeline built in Go gets a file's defaults
		return nil, err
	}
	cfg.ID = cmp.Or(cfg.ID, DefaultID())
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.MaintenanceInterval = cmp.Or(cfg.MaintenanceInterval, time.Second)
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = traceContext
	}
	if pool != nil && store.TransactionPooled(pool) {
		cfg.PollOnly = true
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		pool: pool, cfg: cfg, metrics: m, log: cfg.Logger.With("worker", cfg.ID), stages: map[string]*stage{}, settled: make(chan struct{}, 1),
		tracer: cfg.TracerProvider.Tracer("github.com/baton-run/baton/worker"),
	}
	secrets := cfg.Secrets
	if pool != nil {
		secrets = append(secrets, pool.Config().ConnConfig.Password)
	}
	w.redact = redactor(secrets)
	_, w.tracingOff = cfg.TracerProvider.(noop.TracerProvider)
	for _, st := range cfg.Pipeline.Stages {
		h, err := handlerFor(st, &w.guard, cfg.Handlers, cfg.Propagator)
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", st.Queue, err)
		}
		rate, _ := store.ParseRate(st.RateLimit) // validated with the pipeline
		s := &stage{
			w: w, cfg: st, handler: h, rate: rate, log: w.log.With("queue", st.Queue),
			timeout: fmt.Errorf("timeout: handler ran longer than %s", st.Timeout.D()),
			metrics: m.stage(st.Queue), spanName: "process " + st.Queue,
			running: map[int64]*inflight{}, slots: slotsFor(st), wake: make(chan struct{}, 1), freed: make(chan struct{}, 1),
			beatLease: st.Lease.D(), beatSooner: make(chan struct{}, 1),
			idle: make(chan task), retire: make(chan struct{}), stopped: make(chan struct{}),
			completions: make(chan *done, st.ceiling()), deadlines: deadlines{epoch: time.Now()},
		}
		s.metrics.slots.Set(float64(s.slots.size))
		w.stages[st.Queue] = s
	}
	if err := unnamed(cfg.Handlers, cfg.Pipeline); err != nil {
		return nil, err
	}
	return w, nil
}

// unnamed refuses Go handlers that no stage names: a typo in a stage's
// handler, or a stage left out, would leave its jobs waiting for good.
func unnamed(handlers Handlers, p *Pipeline) error {
	for name := range handlers {
		if !slices.ContainsFunc(p.Stages, func(st Stage) bool { return st.Handler.Go == name }) {
			return fmt.Errorf("%w: no stage names the Go handler %q", ErrPipeline, name)
		}
	}
	return nil
}

// DefaultID names a replica by host and process id.
func DefaultID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", cmp.Or(host, "worker"), os.Getpid())
}

// PoolSize is the connection pool size a replica of the pipeline needs (its
// ConnectConfig.MaxConns): 2, and one more for every four stages past the
// first four. Claims and completions are batched, so a replica's load fits
// in two connections (a burn-down ran as fast with 2 as with 8); what costs
// is every replica's connections together on the server: on two cores, four
// replicas of 2 connections ran a quarter faster than four of 8
// (docs/benchmarks.md, "A replica's pool of two connections"). Handlers whose own
// transactions use the worker's pool (CompleteTx) need connections of
// their own on top of it.
func (p *Pipeline) PoolSize() int32 {
	return int32(2 + max(0, len(p.Stages)-1)/4)
}

// ErrNotWorking is Ready's answer while the worker starts or drains.
var ErrNotWorking = errors.New("not working: starting or shutting down")

// Ready reports whether the worker is working: Run has started its stages,
// is not draining for shutdown, and the database answers. It is what a
// replica's readiness probe asks (baton worker --metrics-addr: /readyz).
func (w *Worker) Ready(ctx context.Context) error {
	if !w.working.Load() {
		return ErrNotWorking
	}
	if err := w.pool.Ping(ctx); err != nil {
		return fmt.Errorf("the database does not answer: %w", store.MapError(err))
	}
	return nil
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
		err := store.New(w.pool).QueueCreate(qctx, st.Queue)
		cancel()
		if err != nil {
			return fmt.Errorf("registering queue %s: %w", st.Queue, store.MapError(err))
		}
	}
	if slices.ContainsFunc(w.cfg.Pipeline.Stages, func(s Stage) bool { return len(s.Handler.Exec) > 0 }) {
		if err := w.guard.start(w.log); err != nil {
			return err
		}
		defer w.guard.stop()
	}
	w.log.Info("worker started", "stages", len(w.stages), "periodic", len(w.cfg.Pipeline.Periodic), "pool_max_conns", w.pool.Config().MaxConns, "listen", !w.cfg.PollOnly)

	// Handlers run under their own contexts: shutdown must not cancel them
	// until the grace period is over, and then releaseAll cancels each. Their
	// parent cannot be canceled, so that a job's context is not registered
	// with it (a lock and a map entry per job).
	w.handlerCtx = bg
	hbCtx, stopHeartbeats := context.WithCancel(bg)
	var loops, heartbeats, completers sync.WaitGroup
	for _, s := range w.stages {
		loops.Go(func() { s.claimLoop(ctx) })
		if !s.grouped() {
			loops.Go(func() { s.watchFloor(ctx) })
		}
		heartbeats.Go(func() { s.heartbeatLoop(hbCtx) })
		completers.Go(func() { s.completer(s.completions) })
	}
	loops.Go(func() {
		maintenance.Run(ctx, w.pool, w.cfg.MaintenanceInterval, maintenance.Retention(w.cfg.Retention), maintenance.ReaderLimits(w.cfg.ReaderLimits), w.log)
	})
	if !w.cfg.PollOnly {
		loops.Go(func() { w.listen(ctx) })
	}
	if len(w.cfg.Pipeline.Periodic) > 0 {
		loops.Go(func() { w.runPeriodic(ctx) })
	}
	w.working.Store(true)
	loops.Wait()
	w.working.Store(false) // draining
	w.alone.Wait()         // a held isolated job not yet started is given back
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
	for _, s := range w.stages {
		close(s.stopped) // every handler has returned: their goroutines end
		s.deadlines.stop()
	}
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
