// Command riverbench runs River v0.51.2 on the workloads `baton bench`
// measures, so the two can be compared on one machine in one run:
//
//	-mode noop:     River's own no-op burn-down of a preloaded backlog
//	-mode pipeline: Baton's A -> B pipeline the River way: per job, one
//	                transaction with a status upsert, InsertTx of the next
//	                job and JobCompleteTx (stage B is not worked).
//
// It prints one JSON object. It lives in its own module so that River never
// enters Baton's go.mod.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

type stageA struct {
	N   int    `json:"n"`
	Pad string `json:"pad,omitempty"`
}

func (stageA) Kind() string { return "stage_a" }

type stageB struct {
	N   int    `json:"n"`
	Pad string `json:"pad,omitempty"`
}

func (stageB) Kind() string { return "stage_b" }

type noopArgs struct {
	Pad string `json:"pad,omitempty"`
}

// pad is the filler that makes a job's args about size bytes of JSON, as
// `baton bench --payload-bytes` makes its payloads: base64 of seeded random
// bytes, which compression cannot shrink much.
func pad(size int) string {
	if size == 0 {
		return ""
	}
	n := size - len(`{"n":1,"pad":""}`)
	raw := make([]byte, base64.StdEncoding.DecodedLen(size)+3)
	_, _ = rand.NewChaCha8([32]byte{}).Read(raw)
	return base64.StdEncoding.EncodeToString(raw)[:n]
}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct{ river.WorkerDefaults[noopArgs] }

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

type stageBWorker struct{ river.WorkerDefaults[stageB] }

func (stageBWorker) Work(context.Context, *river.Job[stageB]) error { return nil }

// stageAWorker completes a job the way a River user builds a pipeline stage
// that must hand off exactly once: all in the job's own transaction.
type stageAWorker struct {
	river.WorkerDefaults[stageA]
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

func (w *stageAWorker) Work(ctx context.Context, job *river.Job[stageA]) error {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `INSERT INTO task_status (job_id, status) VALUES ($1, 'done')
		ON CONFLICT (job_id) DO UPDATE SET status = excluded.status`, job.ID); err != nil {
		return err
	}
	if _, err := w.client.InsertTx(ctx, tx, stageB(job.Args), &river.InsertOpts{Queue: "b"}); err != nil {
		return err
	}
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

type result struct {
	System         string  `json:"system"`
	Mode           string  `json:"mode"`
	Jobs           int     `json:"jobs"`
	Seconds        float64 `json:"seconds"`
	JobsPerSec     float64 `json:"jobs_per_sec"`
	HandoffsPerSec float64 `json:"handoffs_per_sec"`
}

func main() {
	dsn := flag.String("dsn", "postgres://postgres@127.0.0.1:5432/river_bench?sslmode=disable", "database (recreated)")
	mode := flag.String("mode", "pipeline", "noop or pipeline")
	n := flag.Int("n", 50000, "jobs")
	maxWorkers := flag.Int("max-workers", 100, "River MaxWorkers of the worked queue (pipeline)")
	noopWorkers := flag.Int("noop-max-workers", 2000, "River MaxWorkers for -mode noop (river bench uses 2000)")
	maxConns := flag.Int("max-conns", 8, "pool size")
	payloadBytes := flag.Int("payload-bytes", 0, "about this many bytes of JSON args per job, as baton bench --payload-bytes (0: the bare args)")
	baton := flag.String("compare-with", "", "path of a baton binary: interleave baton bench with River and print medians")
	batonDSN := flag.String("baton-dsn", "postgres://postgres@127.0.0.1:5432/baton?sslmode=disable", "DATABASE_URL for baton bench (it uses <name>_bench)")
	reps := flag.Int("reps", 3, "repetitions for -compare-with")
	batonSlots := flag.Int("baton-slots", 0, "baton bench --concurrency for the pipeline (0: Baton's defaults, adaptive slots)")
	batonNoopSlots := flag.Int("baton-noop-slots", 0, "baton bench --concurrency for one stage (0: Baton's defaults, adaptive slots)")
	flag.Parse()
	var err error
	if *baton != "" {
		err = compare(compareConfig{baton: *baton, batonDSN: *batonDSN, riverDSN: *dsn, n: *n, reps: *reps, payloadBytes: *payloadBytes,
			maxWorkers: *maxWorkers, noopWorkers: *noopWorkers, maxConns: *maxConns, batonSlots: *batonSlots, batonNoopSlots: *batonNoopSlots}, os.Stdout)
	} else {
		w := *maxWorkers
		if *mode == "noop" {
			w = *noopWorkers
		}
		err = runTo(os.Stdout, *dsn, *mode, *n, w, *maxConns, *payloadBytes)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "riverbench:", err)
		os.Exit(1)
	}
}

func runTo(out io.Writer, dsn, mode string, n, maxWorkers, maxConns, payloadBytes int) error {
	ctx := context.Background()
	if mode != "noop" && mode != "pipeline" {
		return fmt.Errorf("-mode must be noop or pipeline")
	}
	if err := recreate(ctx, dsn); err != nil {
		return err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(maxConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "CREATE TABLE task_status (job_id bigint PRIMARY KEY, status text NOT NULL)"); err != nil {
		return err
	}

	workers := river.NewWorkers()
	sa := &stageAWorker{pool: pool}
	river.AddWorker(workers, noopWorker{})
	river.AddWorker(workers, sa)
	river.AddWorker(workers, stageBWorker{}) // InsertTx needs the kind registered; queue b is not worked
	// Tuned as River's own `river bench` is: short fetch cooldown and poll.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     2 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: maxWorkers}},
		Workers:           workers,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	sa.client = client

	kind, filler := "stage_a", pad(payloadBytes)
	var params []river.InsertManyParams
	for i := range n {
		if mode == "noop" {
			params = append(params, river.InsertManyParams{Args: noopArgs{Pad: filler}})
			kind = "noop"
		} else {
			params = append(params, river.InsertManyParams{Args: stageA{N: i, Pad: filler}})
		}
		if len(params) == min(5000, max(1, 8<<20/max(1, payloadBytes))) || i == n-1 {
			if _, err := client.InsertMany(ctx, params); err != nil {
				return err
			}
			params = params[:0]
		}
	}
	for _, sql := range []string{"VACUUM ANALYZE river_job", "CHECKPOINT"} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return err
		}
	}

	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return err
	}
	for {
		var done int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'", kind).Scan(&done); err != nil {
			return err
		}
		if done >= n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	secs := time.Since(start).Seconds()
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = client.Stop(stopCtx)

	r := result{System: "river v0.51.2", Mode: mode, Jobs: n, Seconds: secs, JobsPerSec: float64(n) / secs}
	if mode == "pipeline" {
		r.HandoffsPerSec = r.JobsPerSec
	}
	return json.NewEncoder(out).Encode(r)
}

func recreate(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}
