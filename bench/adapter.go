package bench

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// The adapter speaks the contract of the public Postgres job-queue
// benchmark (github.com/hardbyte/postgresql-job-queue-benchmarking,
// CONTRIBUTING_ADAPTERS.md): its harness sets the environment, reads one
// descriptor line and then, every SAMPLE_EVERY_S on wall-clock boundaries,
// one JSON line per metric from stdout, and sends SIGTERM at the end.
// portable/adapter.json is its static manifest.

//go:embed portable/adapter.json
var adapterManifest []byte

// adapterQueue is the queue the adapter's producer fills and its worker works.
const adapterQueue = "bench"

// claimWindow is the rolling window of the claim latency percentiles.
const claimWindow = 30 * time.Second

// AdapterConfig is the harness's environment.
type AdapterConfig struct {
	URL          string        // DATABASE_URL, used as it is
	Scenario     string        // SCENARIO: long_horizon
	ProducerMode string        // PRODUCER_MODE: fixed or depth-target
	Rate         float64       // PRODUCER_RATE, jobs/s offered in fixed mode
	RateFile     string        // PRODUCER_RATE_CONTROL_FILE: the rate now, read every second (the harness's high-load phase)
	BatchMax     int           // PRODUCER_BATCH_MAX, jobs a submit at most
	BatchEvery   time.Duration // PRODUCER_BATCH_MS, the producer's tick
	TargetDepth  int           // TARGET_DEPTH, in depth-target mode
	Workers      int           // WORKER_COUNT, the stage's concurrency
	PayloadBytes int           // JOB_PAYLOAD_BYTES
	Work         time.Duration // JOB_WORK_MS, each job's synthetic work
	SampleEvery  time.Duration // SAMPLE_EVERY_S
	Version      string        // the binary's version, for the descriptor
}

// AdapterConfigFromEnv reads the harness's environment, with its defaults.
func AdapterConfigFromEnv(getenv func(string) string) (AdapterConfig, error) {
	c := AdapterConfig{URL: getenv("DATABASE_URL"), Scenario: cmp.Or(getenv("SCENARIO"), "long_horizon"),
		ProducerMode: cmp.Or(getenv("PRODUCER_MODE"), "fixed"), RateFile: getenv("PRODUCER_RATE_CONTROL_FILE")}
	var errs []error
	num := func(name string, def, lo, hi float64) float64 {
		s := getenv(name)
		if s == "" {
			return def
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || v < lo || v > hi {
			errs = append(errs, fmt.Errorf("%s must be a number from %g to %g, not %q", name, lo, hi, s))
			return def
		}
		return v
	}
	c.Rate = num("PRODUCER_RATE", 100, 0, 1_000_000)
	c.BatchMax = int(num("PRODUCER_BATCH_MAX", 128, 1, 10_000))
	c.BatchEvery = time.Duration(num("PRODUCER_BATCH_MS", 10, 1, 10_000)) * time.Millisecond
	c.TargetDepth = int(num("TARGET_DEPTH", 1000, 1, 10_000_000))
	c.Workers = int(num("WORKER_COUNT", 64, 1, worker.MaxSlots))
	c.PayloadBytes = int(num("JOB_PAYLOAD_BYTES", 256, MinPayloadBytes, MaxPayloadBytes))
	c.Work = time.Duration(num("JOB_WORK_MS", 1, 0, 60_000) * float64(time.Millisecond))
	c.SampleEvery = time.Duration(num("SAMPLE_EVERY_S", 5, 1, 3600)) * time.Second
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("DATABASE_URL is not set"))
	case c.Scenario != "long_horizon":
		errs = append(errs, fmt.Errorf("SCENARIO %q: the adapter runs long_horizon", c.Scenario))
	case c.ProducerMode != "fixed" && c.ProducerMode != "depth-target":
		errs = append(errs, fmt.Errorf("PRODUCER_MODE must be fixed or depth-target, not %q", c.ProducerMode))
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = err.Error()
		}
		return c, errors.New(strings.Join(msgs, "; ")) // one line
	}
	return c, nil
}

// adapter is a running adapter's state.
type adapter struct {
	cfg      AdapterConfig
	out      io.Writer
	payload  []byte
	mu       sync.Mutex
	claims   *hdrhistogram.WindowedHistogram // pickup latency, µs, one segment per sample
	enqueued atomic.Int64
	depth    atomic.Int64
}

// RunAdapter migrates the database DATABASE_URL names (never another: a
// transaction that holds back vacuum must be in the same database), then
// produces and works jobs and writes the samples to out until ctx is done.
func RunAdapter(ctx context.Context, cfg AdapterConfig, out io.Writer, log *slog.Logger) error {
	if err := store.MigrateUp(ctx, cfg.URL); err != nil {
		return err
	}
	p := &worker.Pipeline{
		Stages:        []worker.Stage{{Queue: adapterQueue, Handler: worker.HandlerSpec{Go: "work"}, Concurrency: cfg.Workers}},
		ShutdownGrace: worker.Duration(2 * time.Second),
	}
	if err := p.Validate(); err != nil {
		return err
	}
	pool, err := store.Connect(ctx, store.ConnectConfig{URL: cfg.URL, AppName: "baton-adapter", MaxConns: p.PoolSize() + 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	segments := int((claimWindow + cfg.SampleEvery - 1) / cfg.SampleEvery)
	a := &adapter{cfg: cfg, out: out, payload: Payload(cfg.PayloadBytes),
		claims: hdrhistogram.NewWindowed(segments, 1, int64(time.Hour/time.Microsecond), 3)}
	w, err := worker.New(pool, worker.Config{
		Pipeline: p, ID: "adapter", Logger: log, TracerProvider: tracenoop.NewTracerProvider(),
		Handlers: worker.Handlers{"work": worker.HandlerFunc(a.work)},
	})
	if err != nil {
		return err
	}
	if err := a.describe(); err != nil {
		return err
	}
	var loops sync.WaitGroup
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	loops.Go(func() {
		if err := w.Run(wctx); err != nil {
			log.Error("worker", "error", err)
		}
	})
	loops.Go(func() { a.produce(wctx, pool, log) })
	loops.Go(func() { a.watchDepth(wctx, pool, log) })
	a.sample(ctx, w)
	stop()
	loops.Wait()
	return nil
}

// work is the jobs' handler: it records the pickup latency (insert to
// start, the database's created_at against this clock, on one machine)
// and works for JOB_WORK_MS.
func (a *adapter) work(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
	waited := time.Since(job.CreatedAt).Microseconds()
	a.mu.Lock()
	_ = a.claims.Current.RecordValue(max(1, waited))
	a.mu.Unlock()
	if a.cfg.Work > 0 {
		t := time.NewTimer(a.cfg.Work)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
	return nil, nil
}

// produce submits jobs through the documented bulk submit (db.Submit), at
// most PRODUCER_BATCH_MAX a statement. In fixed mode the offered load is
// credited on the wall-clock time gone by, so that a slow or failed submit
// delays jobs but never leaves them out; in depth-target mode it tops the
// queue up to TARGET_DEPTH.
func (a *adapter) produce(ctx context.Context, pool db.Conn, log *slog.Logger) {
	tick := time.NewTicker(a.cfg.BatchEvery)
	defer tick.Stop()
	credit, last := 0.0, time.Now()
	rate, read := a.cfg.Rate, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if a.cfg.RateFile != "" && time.Since(read) >= time.Second {
			rate, read = a.rateNow(rate), time.Now()
		}
		due := 0
		if a.cfg.ProducerMode == "fixed" {
			now := time.Now()
			credit += rate * now.Sub(last).Seconds()
			last = now
			due = int(credit)
			credit -= float64(due)
		} else {
			due = max(0, a.cfg.TargetDepth-int(a.depth.Load()))
		}
		for due > 0 && ctx.Err() == nil {
			n := min(due, a.cfg.BatchMax)
			jobs := make([]db.NewJob, n)
			for i := range jobs {
				jobs[i] = db.NewJob{Queue: adapterQueue, Payload: a.payload}
			}
			if _, err := db.Submit(ctx, pool, jobs...); err != nil {
				if ctx.Err() == nil {
					log.Warn("submitting", "error", err)
				}
				if a.cfg.ProducerMode == "fixed" {
					credit += float64(due) // still offered: submitted on the next tick
				}
				break
			}
			a.enqueued.Add(int64(n))
			a.depth.Add(int64(n)) // until the next reading
			due -= n
		}
	}
}

// rateNow reads the offered rate from PRODUCER_RATE_CONTROL_FILE, which
// the harness rewrites for its high-load phase; while it cannot be read,
// the rate stays as it was.
func (a *adapter) rateNow(was float64) float64 {
	b, err := os.ReadFile(a.cfg.RateFile)
	if err != nil {
		return was
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1_000_000 {
		return was
	}
	return v
}

// watchDepth reads the queue's available jobs from its counters, often
// enough for depth-target mode to follow it, and otherwise once a sample,
// for the samples: the reading (db.Queues) also finds the oldest waiting
// job, which under a held transaction steps over every job claimed since,
// and ten readings a second took a third of a core there.
func (a *adapter) watchDepth(ctx context.Context, pool db.Conn, log *slog.Logger) {
	every := a.cfg.SampleEvery
	if a.cfg.ProducerMode == "depth-target" {
		every = 100 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		qs, err := db.Queues(ctx, pool, adapterQueue)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("reading the queue's depth", "error", err)
		case len(qs) == 1:
			a.depth.Store(qs[0].Available)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// describe writes the descriptor line: the manifest's tables, and this run.
func (a *adapter) describe() error {
	var m struct {
		System      string   `json:"system"`
		EventTables []string `json:"event_tables"`
		Extensions  []string `json:"extensions"`
	}
	if err := json.Unmarshal(adapterManifest, &m); err != nil {
		return err
	}
	dbName := ""
	if u, err := url.Parse(a.cfg.URL); err == nil {
		dbName = strings.TrimPrefix(u.Path, "/")
	}
	versions, err := store.MigrationVersions()
	if err != nil || len(versions) == 0 {
		return fmt.Errorf("reading the migrations: %w", err)
	}
	return json.NewEncoder(a.out).Encode(map[string]any{
		"kind": "descriptor", "system": m.System, "event_tables": m.EventTables, "extensions": m.Extensions,
		"version": cmp.Or(a.cfg.Version, "(devel)"), "schema_version": strconv.Itoa(versions[len(versions)-1]),
		"db_name": dbName, "started_at": stamp(time.Now()),
	})
}

// sample writes the metrics on every SAMPLE_EVERY_S boundary of the wall
// clock until ctx is done.
func (a *adapter) sample(ctx context.Context, w *worker.Worker) {
	every := a.cfg.SampleEvery
	last, done := time.Now(), w.Stats().Succeeded
	enc := json.NewEncoder(a.out)
	for {
		next := time.Now().Truncate(every).Add(every)
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		now := time.Now()
		secs := now.Sub(last).Seconds()
		enqueued, completed := a.enqueued.Swap(0), w.Stats().Succeeded
		a.mu.Lock()
		claims := a.claims.Merge()
		a.claims.Rotate()
		a.mu.Unlock()
		ms := func(q float64) float64 { return float64(claims.ValueAtQuantile(q)) / 1000 }
		window := int(claimWindow / time.Second)
		for _, m := range []struct {
			name   string
			value  float64
			window int
		}{
			{"claim_p50_ms", ms(50), window}, {"claim_p95_ms", ms(95), window}, {"claim_p99_ms", ms(99), window},
			{"enqueue_rate", float64(enqueued) / secs, int(every / time.Second)},
			{"completion_rate", float64(completed-done) / secs, int(every / time.Second)},
			{"queue_depth", float64(a.depth.Load()), 0},
		} {
			_ = enc.Encode(map[string]any{"t": stamp(next), "system": "baton", "kind": "adapter", "subject_kind": "adapter",
				"subject": "", "metric": m.name, "value": m.value, "window_s": m.window})
		}
		last, done = now, completed
	}
}

// stamp is the contract's time format: UTC, milliseconds, Z.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
