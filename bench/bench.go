// Package bench is `baton bench`: it recreates a database of its own beside
// the target (<name>_bench), runs worker replicas in this process on no-op
// jobs, and measures the hot path (docs/benchmarks.md): jobs/s through one
// stage or an A -> B hand-off, pickup and end-to-end latency at an offered
// load, REST batch submits, the database's own commit rate, CPU per job and
// peak RSS. Sweep and Soak are its long forms. cmd/baton parses the flags.
//
// The API it submits through is passed in (Config.API), so that nothing but
// cmd imports the api package.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/store"
)

// Config is one bench run, as `baton bench`'s flags set it.
type Config struct {
	// URL is how the bench connects to the target server (DATABASE_URL);
	// DirectURL reaches the same server without a pooler, for creating and
	// migrating the bench database. Pooler is the connection mode through URL.
	URL, DirectURL string
	Pooler         store.Pooler
	// Stages is 1 (no-op jobs through one stage) or 2 (A -> B hand-offs).
	Stages int
	// Jobs is the backlog burned down (or, with Soak, the jobs pushed through).
	Jobs int
	// Workers replicas, each with Concurrency slots per stage (0: a
	// pipeline file's default, adaptive slots).
	Workers, Concurrency int
	// Rate jobs/s are offered for Duration to measure pickup latency (0 skips).
	Rate     float64
	Duration time.Duration
	// RESTJobs are submitted through the REST batch route (0 skips).
	RESTJobs int
	// PayloadBytes sizes the burn-down's payloads (0: a 7-byte one; else
	// MinPayloadBytes..MaxPayloadBytes).
	PayloadBytes int
	// JSON prints one JSON object instead of a table.
	JSON bool
	// CPUProfile, if set, is where a Go CPU profile of the burn-down goes.
	CPUProfile string
	// Sweep lists slot counts: a burn-down at each, throughput against the
	// claim batch. SVG, with Sweep or Soak, is where the plot goes.
	Sweep []int
	SVG   string
	// Soak pushes Jobs through A -> B with retention Retain, a backlog kept
	// waiting, and reports every Window jobs.
	Soak   bool
	Window int
	Retain time.Duration
	// API serves the REST API on a pool (api.New(pool, ...).Handler()).
	API func(*pgxpool.Pool) http.Handler
	// Progress receives a line per step. Defaults to none.
	Progress io.Writer
}

// run is one bench run under way.
type run struct {
	cfg    Config
	pool   *pgxpool.Pool
	target store.ConnectConfig // how replicas connect to the bench database
}

func (r *run) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

// Result is what `baton bench --json` prints.
type Result struct {
	Stages int `json:"stages"`
	Jobs   int `json:"jobs"`
	// PayloadBytes is the burn-down's payload size (0: 7 bytes).
	PayloadBytes int `json:"payload_bytes"`
	Workers      int `json:"workers"`
	Concurrency  int `json:"concurrency"`
	burn
	// CommitRate is the durable single-row commit rate of the same database,
	// measured in the same run; the multiples below compare across machines.
	CommitRate    float64 `json:"commit_rate"`
	JobsPerCommit float64 `json:"jobs_per_sec_per_commit_rate"`
	PickupRate    float64 `json:"pickup_offered_per_sec"`
	PickupP50Ms   float64 `json:"pickup_p50_ms"`
	PickupP99Ms   float64 `json:"pickup_p99_ms"`
	EndToEndP50Ms float64 `json:"end_to_end_p50_ms"`
	EndToEndP99Ms float64 `json:"end_to_end_p99_ms"`
	// RESTSubmitPerSec is jobs/s submitted through POST .../jobs/batch
	// (1,000 jobs per request, 4 clients) to the API in this process.
	RESTSubmitPerSec    float64 `json:"rest_submit_per_sec"`
	RSSMB               float64 `json:"rss_mb"`
	DatabaseForBenchRun string  `json:"database"`
}

// burn is what one burn-down of the backlog measured.
type burn struct {
	Seconds float64 `json:"seconds"`
	// JobsPerSec counts job executions completed per second, every stage counted.
	JobsPerSec float64 `json:"jobs_per_sec"`
	// HandoffsPerSec counts stage transitions that created the next stage's job.
	HandoffsPerSec float64 `json:"handoffs_per_sec"`
	// MeanClaimBatch and MeanCompleteBatch are jobs per claim statement and
	// per completion statement: the batching the hot path achieved.
	MeanClaimBatch    float64 `json:"mean_claim_batch"`
	MeanCompleteBatch float64 `json:"mean_complete_batch"`
	// Slots is a replica's handler slots on queue a at the end: the fixed
	// concurrency, or what adaptive slots grew to.
	Slots int `json:"slots"`
	// CPUMsPerKJobs is the whole machine's busy CPU time per 1,000
	// executions (this process and a local Postgres; Linux only, else 0),
	// and BenchCPUMsPerKJobs this process's share. On a machine whose disk
	// or neighbours make throughput swing, CPU per job is the steadier
	// figure for comparing two builds.
	CPUMsPerKJobs      float64 `json:"cpu_ms_per_1000_jobs"`
	BenchCPUMsPerKJobs float64 `json:"bench_cpu_ms_per_1000_jobs"`
}

// Run measures Baton on the server of cfg.URL, in a database of its own
// (the URL's name + "_bench", recreated each run), and prints the result.
func Run(ctx context.Context, cfg Config, stdout io.Writer) error {
	// The bench database is made and migrated directly; the bench then
	// connects the way URL and Pooler say (through PgBouncer, say, to
	// measure what it costs).
	name, err := benchDatabase(ctx, cfg.DirectURL)
	if err != nil {
		return err
	}
	benchURL, err := withDatabase(cfg.URL, name)
	if err != nil {
		return err
	}
	pool, err := store.Connect(ctx, store.ConnectConfig{URL: benchURL, AppName: "baton-bench", MaxConns: 16, Pooler: cfg.Pooler})
	if err != nil {
		return err
	}
	defer pool.Close()
	rn := &run{cfg: cfg, pool: pool, target: store.ConnectConfig{URL: benchURL, Pooler: cfg.Pooler}}
	if cfg.Soak {
		return rn.soak(ctx, stdout)
	}
	r := Result{Stages: cfg.Stages, Jobs: cfg.Jobs, PayloadBytes: cfg.PayloadBytes, Workers: cfg.Workers, Concurrency: cfg.Concurrency, DatabaseForBenchRun: dbName(benchURL)}
	rn.progress("measuring the durable single-row commit rate (8 clients, 3s)")
	if r.CommitRate, err = commitRate(ctx, pool, 8, 3*time.Second); err != nil {
		return err
	}
	if len(cfg.Sweep) > 0 {
		return rn.sweep(ctx, r, stdout)
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	b, rs, err := rn.burnDown(ctx, cfg.Concurrency)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	stop := rs.stop
	r.burn = b
	r.JobsPerCommit = r.JobsPerSec / r.CommitRate

	if cfg.Rate > 0 {
		n := int(cfg.Rate * cfg.Duration.Seconds())
		rn.progress("offering %.0f jobs/s for %s (%d jobs) to measure pickup latency", cfg.Rate, cfg.Duration, n)
		if err := offer(ctx, pool, cfg.Rate, n); err != nil {
			stop()
			return err
		}
		lastOffered, want := "offered", n
		if cfg.Stages == 2 {
			lastOffered, want = "b", cfg.Jobs+n
		}
		if err := rs.wait(ctx, pool, int64((cfg.Jobs+n)*cfg.Stages), lastOffered, want); err != nil {
			stop()
			return err
		}
		r.PickupRate = cfg.Rate
		err := pool.QueryRow(ctx, `
			SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY pickup), 0),
			       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY pickup), 0)
			FROM (SELECT extract(epoch FROM started_at - created_at) * 1000 AS pickup
			      FROM baton.jobs WHERE queue = 'offered') p`).Scan(&r.PickupP50Ms, &r.PickupP99Ms)
		if err != nil {
			stop()
			return err
		}
		err = pool.QueryRow(ctx, `
			SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY e2e), 0),
			       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY e2e), 0)
			FROM (SELECT extract(epoch FROM coalesce(c.finished_at, j.finished_at) - j.created_at) * 1000 AS e2e
			      FROM baton.jobs j LEFT JOIN baton.jobs c ON c.parent_id = j.id
			      WHERE j.queue = 'offered') p`).Scan(&r.EndToEndP50Ms, &r.EndToEndP99Ms)
		if err != nil {
			stop()
			return err
		}
	}
	stop()
	if cfg.RESTJobs > 0 {
		rn.progress("submitting %d jobs through the REST batch route", cfg.RESTJobs)
		if r.RESTSubmitPerSec, err = restSubmit(ctx, cfg.API(pool), cfg.RESTJobs); err != nil {
			return err
		}
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	r.RSSMB = float64(ru.Maxrss) / 1024

	if cfg.JSON {
		return json.NewEncoder(stdout).Encode(r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "stages\t%d\n", r.Stages)
	fmt.Fprintf(tw, "jobs (backlog)\t%d\n", r.Jobs)
	if r.PayloadBytes > 0 {
		fmt.Fprintf(tw, "payload\t%d bytes\n", r.PayloadBytes)
	}
	fmt.Fprintf(tw, "replicas × slots per stage\t%d × %s (%d at the end)\n", r.Workers, slotsName(r.Concurrency), r.Slots)
	fmt.Fprintf(tw, "seconds\t%.2f\n", r.Seconds)
	fmt.Fprintf(tw, "jobs/s (executions, all stages)\t%.0f\n", r.JobsPerSec)
	fmt.Fprintf(tw, "hand-offs/s\t%.0f\n", r.HandoffsPerSec)
	fmt.Fprintf(tw, "mean claim / completion batch\t%.1f / %.1f jobs\n", r.MeanClaimBatch, r.MeanCompleteBatch)
	if r.CPUMsPerKJobs > 0 {
		fmt.Fprintf(tw, "CPU per 1,000 executions (machine / bench process)\t%.0f / %.0f ms\n", r.CPUMsPerKJobs, r.BenchCPUMsPerKJobs)
	}
	fmt.Fprintf(tw, "commit rate (single-row, durable)\t%.0f/s\n", r.CommitRate)
	fmt.Fprintf(tw, "jobs/s ÷ commit rate\t%.2f×\n", r.JobsPerCommit)
	if r.PickupRate > 0 {
		fmt.Fprintf(tw, "pickup p50 / p99 at %.0f jobs/s\t%.1f / %.1f ms\n", r.PickupRate, r.PickupP50Ms, r.PickupP99Ms)
		fmt.Fprintf(tw, "end to end p50 / p99\t%.1f / %.1f ms\n", r.EndToEndP50Ms, r.EndToEndP99Ms)
	}
	if r.RESTSubmitPerSec > 0 {
		fmt.Fprintf(tw, "REST batch submit\t%.0f jobs/s\n", r.RESTSubmitPerSec)
	}
	fmt.Fprintf(tw, "peak RSS\t%.0f MB\n", r.RSSMB)
	return tw.Flush()
}
