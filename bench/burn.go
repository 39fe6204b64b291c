package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// burnDown preloads the configured backlog and works it off with in-process
// replicas of concurrency slots per stage (0: adaptive). The replicas keep running until
// rs.stop.
func (r *run) burnDown(ctx context.Context, concurrency int) (b burn, rs *replicas, err error) {
	pool, stages, jobs, workers := r.pool, r.cfg.Stages, r.cfg.Jobs, r.cfg.Workers
	r.progress("preloading %d jobs", jobs)
	if err := preload(ctx, pool, jobs, r.cfg.PayloadBytes); err != nil {
		return b, nil, err
	}
	r.progress("burning down the backlog with %d replica(s), %s per stage", workers, slotsName(concurrency))
	start := time.Now()
	machine0, self0 := cpuTimes()
	rs, err = startReplicas(ctx, r.target, stages, concurrency, workers, worker.Retention{})
	if err != nil {
		return b, nil, err
	}
	if err := rs.wait(ctx, pool, int64(jobs*stages), map[int]string{1: "a", 2: "b"}[stages], jobs); err != nil {
		rs.stop()
		return b, nil, err
	}
	ws := rs.workers
	b.Seconds = time.Since(start).Seconds()
	machine1, self1 := cpuTimes()
	if machine1 > machine0 {
		b.CPUMsPerKJobs = float64((machine1 - machine0).Milliseconds()) * 1000 / float64(jobs*stages)
	}
	b.BenchCPUMsPerKJobs = float64((self1 - self0).Milliseconds()) * 1000 / float64(jobs*stages)
	b.JobsPerSec = float64(jobs*stages) / b.Seconds
	if stages == 2 {
		b.HandoffsPerSec = float64(jobs) / b.Seconds
	}
	var st worker.Stats
	for _, w := range ws {
		s := w.Stats()
		st.Claimed, st.Succeeded = st.Claimed+s.Claimed, st.Succeeded+s.Succeeded
		st.ClaimBatches, st.CompleteBatches = st.ClaimBatches+s.ClaimBatches, st.CompleteBatches+s.CompleteBatches
	}
	b.MeanClaimBatch = float64(st.Claimed) / max(1, float64(st.ClaimBatches))
	b.MeanCompleteBatch = float64(st.Succeeded) / max(1, float64(st.CompleteBatches))
	b.Slots = rs.slots("a")
	return b, rs, nil
}

// slots is the most handler slots a replica's stage on queue has now
// (baton_stage_slots): with adaptive slots, what the burn-down grew them to.
func (rs *replicas) slots(queue string) int {
	most := 0
	for _, reg := range rs.metrics {
		families, _ := reg.Gather()
		for _, f := range families {
			if f.GetName() != "baton_stage_slots" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "queue" && l.GetValue() == queue {
						most = max(most, int(m.GetGauge().GetValue()))
					}
				}
			}
		}
	}
	return most
}

// preload submits n no-op jobs of payloadBytes each (0: a 7-byte one) to
// queue a, in batches of at most 8 MB.
func preload(ctx context.Context, pool *pgxpool.Pool, n, payloadBytes int) error {
	batch := noopJobs(min(5000, max(1, 8<<20/max(1, payloadBytes))), payloadBytes)
	for done := 0; done < n; {
		k := min(len(batch), n-done)
		if _, err := store.Submit(ctx, pool, batch[:k]...); err != nil {
			return err
		}
		done += k
	}
	for _, sql := range []string{"VACUUM ANALYZE baton.jobs", "CHECKPOINT"} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("bench: %s: %w", sql, err)
		}
	}
	return nil
}

// noopJobs is n jobs for queue a, the bench's first stage, with payloads
// of payloadBytes each (0: a 7-byte one).
func noopJobs(n, payloadBytes int) []store.NewJob {
	payload := []byte(`{"n":1}`)
	if payloadBytes > 0 {
		payload = Payload(payloadBytes)
	}
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: "a", Payload: payload}
	}
	return jobs
}

// MinPayloadBytes and MaxPayloadBytes bound --payload-bytes.
const (
	MinPayloadBytes = 16
	MaxPayloadBytes = 1 << 20
)

// Payload is a JSON object of exactly size bytes (at least
// MinPayloadBytes): {"n":1,"pad":"..."}, padded with base64 of seeded
// random bytes, which PostgreSQL's compression cannot shrink much, so that
// a large payload is stored at about its size (out of line past 2 kB).
func Payload(size int) []byte {
	const head, tail = `{"n":1,"pad":"`, `"}`
	pad := make([]byte, base64.StdEncoding.DecodedLen(size)+3)
	_, _ = rand.NewChaCha8([32]byte{}).Read(pad) // seeded: the same payload every run
	enc := base64.StdEncoding.EncodeToString(pad)
	return []byte(head + enc[:size-len(head)-len(tail)] + tail)
}

// The bench measures Baton, not a handler: noopHandler hands its payload on
// to the next stage, and doneHandler, the last stage's, returns nothing, as
// River's no-op writes nothing (returning the payload stored it again as
// the job's result: at 64 KB a second TOASTed write a job).
var (
	noopHandler = worker.HandlerFunc(func(_ context.Context, job *worker.Job) (json.RawMessage, error) { return job.Payload, nil })
	doneHandler = worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) { return nil, nil })
)

// benchPipeline is queue a (handing off to b with two stages) and queue
// offered (for the latency run), concurrency slots each (0: a stage's
// default, adaptive slots).
func benchPipeline(stages, concurrency int) *worker.Pipeline {
	slots := "" // a stage's default: adaptive slots
	if concurrency > 0 {
		slots = fmt.Sprintf("    concurrency: %d\n", concurrency)
	}
	yaml := "stages:\n  - queue: a\n    handler: {go: bench-done}\n" + slots
	yaml += "  - queue: offered\n    handler: {go: bench-done}\n" + slots
	if stages == 2 {
		yaml = strings.ReplaceAll(yaml, "handler: {go: bench-done}\n", "handler: {go: bench-noop}\n    next: b\n")
		yaml += "  - queue: b\n    handler: {go: bench-done}\n" + slots
	}
	p, err := worker.ParsePipeline([]byte(yaml))
	if err != nil {
		panic(err) // the bench's own pipeline
	}
	return p
}

// replicas are worker replicas running in this process, each with its own
// metrics.
type replicas struct {
	workers []*worker.Worker
	metrics []*prometheus.Registry
	stop    func()
}

// startReplicas runs n worker replicas in this process on the bench
// pipeline, pruning by retain.
func startReplicas(ctx context.Context, target store.ConnectConfig, stages, concurrency, n int, retain worker.Retention) (*replicas, error) {
	p := benchPipeline(stages, concurrency)
	handlers := worker.Handlers{"bench-done": doneHandler}
	if stages == 2 {
		handlers["bench-noop"] = noopHandler
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var pools []*pgxpool.Pool
	rs := &replicas{stop: func() {
		cancel()
		wg.Wait()
		for _, p := range pools {
			p.Close()
		}
	}}
	for i := range n {
		c := target
		c.AppName, c.MaxConns = fmt.Sprintf("baton-bench-worker %d", i), p.PoolSize()
		pool, err := store.Connect(ctx, c)
		if err != nil {
			rs.stop()
			return nil, err
		}
		pools = append(pools, pool)
		metrics := prometheus.NewRegistry()
		w, err := worker.New(pool, worker.Config{
			Pipeline: p, ID: fmt.Sprintf("bench-%d", i), Logger: slog.New(slog.DiscardHandler), Retention: retain,
			Handlers: handlers, Metrics: metrics,
			TracerProvider: tracenoop.NewTracerProvider(), // as baton worker's, with tracing off
		})
		if err != nil {
			rs.stop()
			return nil, err
		}
		rs.workers, rs.metrics = append(rs.workers, w), append(rs.metrics, metrics)
		wg.Go(func() { _ = w.Run(wctx) })
	}
	return rs, nil
}

// wait waits until the replicas have committed executions successes in all,
// watching their counters (polling the database would cost it a share of the
// CPU being measured), then checks that queue holds n succeeded jobs.
func (rs *replicas) wait(ctx context.Context, pool *pgxpool.Pool, executions int64, queue string, n int) error {
	for {
		var done int64
		for _, w := range rs.workers {
			done += w.Stats().Succeeded
		}
		if done >= executions {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	var got int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM baton.jobs WHERE queue = $1 AND state = 'succeeded'", queue).Scan(&got); err != nil {
		return err
	}
	if got < n {
		return fmt.Errorf("bench: %d jobs succeeded in %s, want %d", got, queue, n)
	}
	return nil
}

// slotsName names a slot count for the reports: 0 is a stage's default.
func slotsName(concurrency int) string {
	if concurrency == 0 {
		return fmt.Sprintf("adaptive slots (%d up to %d)", worker.DefaultConcurrency, worker.DefaultMaxConcurrency)
	}
	return fmt.Sprintf("%d slots", concurrency)
}
