package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/bench"
	"github.com/baton-run/baton/worker"
)

// benchCmd parses `baton bench`'s flags and runs the bench package on the
// server of DATABASE_URL.
func benchCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newCommand("bench", "baton bench [flags]   (in a database named for DATABASE_URL's + \"_bench\", recreated)")
	stages := fs.Int("stages", 2, "1: no-op jobs through one stage; 2: A -> B hand-off, both stages worked")
	jobs := fs.Int("jobs", 20000, "backlog to burn down")
	workers := fs.Int("workers", 1, "worker replicas, in-process, each with its own pool")
	concurrency := fs.Int("concurrency", 0, "fixed handler slots per stage per replica; 0: a pipeline file's default (adaptive slots)")
	rate := fs.Float64("rate", 200, "offered load (jobs/s) for the pickup-latency run; 0 skips it")
	payloadBytes := fs.Int("payload-bytes", 0, "size of each burn-down job's JSON payload, 16 to 1048576 bytes (0: a 7-byte one)")
	restJobs := fs.Int("rest-jobs", 50000, "jobs to submit through the REST batch route; 0 skips it")
	duration := fs.Duration("duration", 5*time.Second, "length of the pickup-latency run")
	asJSON := fs.Bool("json", false, "print one JSON object")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the preload and burn-down to this file")
	sweep := fs.String("sweep", "", "comma-separated slot counts: burn down --jobs at each and report throughput against the claim batch")
	svg := fs.String("svg", "", "with --sweep or --soak: write the plot to this SVG file")
	soak := fs.Bool("soak", false, "push --jobs through A -> B with retention on, keeping a backlog, and report every --window jobs")
	window := fs.Int("window", 500_000, "with --soak: jobs per reported window")
	retain := fs.Duration("retain", time.Minute, "with --soak: how long finished jobs are kept")
	adapter := fs.Bool("adapter", false, "run as an adapter of the public Postgres job-queue benchmark: settings from its environment (SCENARIO, PRODUCER_RATE, WORKER_COUNT, ...), samples as JSON lines on stdout, until SIGTERM; see docs/benchmarks.md")
	pos, err := fs.parse(args)
	switch {
	case err != nil:
		return err
	case len(pos) > 0:
		return usagef("bench: unexpected argument %q", pos[0])
	case *adapter && len(args) > 1:
		return usagef("bench: --adapter takes its settings from the environment, not from flags")
	case *adapter:
		cfg, err := bench.AdapterConfigFromEnv(os.Getenv)
		if err != nil {
			return usagef("bench --adapter: %v", err)
		}
		cfg.Version = version
		return bench.RunAdapter(ctx, cfg, stdout, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	case *stages != 1 && *stages != 2:
		return usagef("bench: --stages must be 1 or 2")
	case *jobs < 1 || *jobs > 10_000_000:
		return usagef("bench: --jobs must be between 1 and 10,000,000")
	case *workers < 1 || *workers > 64 || *concurrency < 0 || *concurrency > worker.MaxSlots:
		return usagef("bench: --workers 1..64, --concurrency 0..10000 (0: adaptive)")
	case *payloadBytes != 0 && (*payloadBytes < bench.MinPayloadBytes || *payloadBytes > bench.MaxPayloadBytes):
		return usagef("bench: --payload-bytes must be 0 or between %d and %d", bench.MinPayloadBytes, bench.MaxPayloadBytes)
	case *rate < 0 || *duration <= 0 || *restJobs < 0:
		return usagef("bench: --rate and --rest-jobs must be >= 0 and --duration > 0")
	case *svg != "" && *sweep == "" && !*soak:
		return usagef("bench: --svg needs --sweep or --soak")
	case *soak && (*sweep != "" || *stages != 2):
		return usagef("bench: --soak runs two stages and no --sweep")
	case *soak && (*window < 1 || *window > *jobs || *retain <= 0):
		return usagef("bench: --window must be between 1 and --jobs, and --retain > 0")
	}
	points, err := parseSweep(*sweep)
	if err != nil {
		return err
	}
	pooler, err := pooler()
	if err != nil {
		return err
	}
	direct, err := migrationURL()
	if err != nil {
		return err
	}
	for _, u := range []string{databaseURL(), direct} {
		if _, err := url.Parse(u); err != nil {
			return usagef("bench: %v", err)
		}
	}
	return bench.Run(ctx, bench.Config{
		URL: databaseURL(), DirectURL: direct, Pooler: pooler,
		Stages: *stages, Jobs: *jobs, Workers: *workers, Concurrency: *concurrency,
		Rate: *rate, Duration: *duration, RESTJobs: *restJobs, PayloadBytes: *payloadBytes, JSON: *asJSON, CPUProfile: *cpuProfile,
		Sweep: points, SVG: *svg, Soak: *soak, Window: *window, Retain: *retain,
		API: func(pool *pgxpool.Pool) http.Handler {
			return api.New(pool, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler()
		},
		Progress: os.Stderr,
	}, stdout)
}

// parseSweep reads --sweep: slot counts, comma-separated.
func parseSweep(list string) ([]int, error) {
	if list == "" {
		return nil, nil
	}
	var points []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 10000 {
			return nil, usagef("bench: --sweep takes slot counts between 1 and 10000, comma-separated, not %q", f)
		}
		points = append(points, n)
	}
	return points, nil
}
