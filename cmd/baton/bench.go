package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

// benchResult is what `baton bench --json` prints.
type benchResult struct {
	Stages      int `json:"stages"`
	Jobs        int `json:"jobs"`
	Workers     int `json:"workers"`
	Concurrency int `json:"concurrency"`
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
	// CPUMsPerKJobs is the whole machine's busy CPU time per 1,000
	// executions (this process and a local Postgres; Linux only, else 0),
	// and BenchCPUMsPerKJobs this process's share. On a machine whose disk
	// or neighbours make throughput swing, CPU per job is the steadier
	// figure for comparing two builds.
	CPUMsPerKJobs      float64 `json:"cpu_ms_per_1000_jobs"`
	BenchCPUMsPerKJobs float64 `json:"bench_cpu_ms_per_1000_jobs"`
}

// burnDown preloads jobs and works them off with in-process replicas. The
// replicas keep running until rs.stop.
func burnDown(ctx context.Context, pool *pgxpool.Pool, target db.ConnectConfig, stages, jobs, workers, concurrency int) (b burn, rs *replicas, err error) {
	progress("preloading %d jobs", jobs)
	if err := preload(ctx, pool, jobs); err != nil {
		return b, nil, err
	}
	progress("burning down the backlog with %d replica(s), %d slots per stage", workers, concurrency)
	start := time.Now()
	machine0, self0 := cpuTimes()
	rs, err = startReplicas(ctx, target, benchPipeline(stages, concurrency), workers, worker.Retention{})
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
	return b, rs, nil
}

// benchCmd measures Baton on the server of DATABASE_URL, in a database of
// its own (the URL's name + "_bench", recreated each run).
func benchCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	stages := fs.Int("stages", 2, "1: no-op jobs through one stage; 2: A -> B hand-off, both stages worked")
	jobs := fs.Int("jobs", 20000, "backlog to burn down")
	workers := fs.Int("workers", 1, "worker replicas, in-process, each with its own pool")
	concurrency := fs.Int("concurrency", 100, "handler slots per stage per replica")
	rate := fs.Float64("rate", 200, "offered load (jobs/s) for the pickup-latency run; 0 skips it")
	restJobs := fs.Int("rest-jobs", 50000, "jobs to submit through the REST batch route; 0 skips it")
	duration := fs.Duration("duration", 5*time.Second, "length of the pickup-latency run")
	asJSON := fs.Bool("json", false, "print one JSON object")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the preload and burn-down to this file")
	sweep := fs.String("sweep", "", "comma-separated slot counts: burn down --jobs at each and report throughput against the claim batch")
	svg := fs.String("svg", "", "with --sweep or --soak: write the plot to this SVG file")
	soak := fs.Bool("soak", false, "push --jobs through A -> B with retention on, keeping a backlog, and report every --window jobs")
	window := fs.Int("window", 500_000, "with --soak: jobs per reported window")
	retain := fs.Duration("retain", time.Minute, "with --soak: how long finished jobs are kept")
	pos, err := parseFlags(fs, args)
	switch {
	case err != nil:
		return err
	case len(pos) > 0:
		return usagef("bench: unexpected argument %q", pos[0])
	case *stages != 1 && *stages != 2:
		return usagef("bench: --stages must be 1 or 2")
	case *jobs < 1 || *jobs > 10_000_000:
		return usagef("bench: --jobs must be between 1 and 10,000,000")
	case *workers < 1 || *workers > 64 || *concurrency < 1 || *concurrency > 10000:
		return usagef("bench: --workers 1..64, --concurrency 1..10000")
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
	// The bench database is made and migrated directly; the bench then
	// connects the way DATABASE_URL and BATON_POOLER say (through PgBouncer,
	// say, to measure what it costs).
	direct, err := migrationURL()
	if err != nil {
		return err
	}
	name, err := benchDatabase(ctx, direct)
	if err != nil {
		return err
	}
	benchURL, err := withDatabase(databaseURL(), name)
	if err != nil {
		return err
	}
	target := db.ConnectConfig{URL: benchURL, Pooler: pooler}
	pool, err := db.Connect(ctx, db.ConnectConfig{URL: benchURL, AppName: "baton-bench", MaxConns: 16, Pooler: pooler})
	if err != nil {
		return err
	}
	defer pool.Close()

	if *soak {
		r := soakResult{Jobs: *jobs, Window: *window, RetainSeconds: retain.Seconds(), Workers: *workers, Concurrency: *concurrency}
		return runSoak(ctx, pool, target, r, *retain, *svg, *asJSON, stdout)
	}
	r := benchResult{Stages: *stages, Jobs: *jobs, Workers: *workers, Concurrency: *concurrency, DatabaseForBenchRun: dbName(benchURL)}
	progress("measuring the durable single-row commit rate (8 clients, 3s)")
	if r.CommitRate, err = commitRate(ctx, pool, 8, 3*time.Second); err != nil {
		return err
	}
	if len(points) > 0 {
		return runSweep(ctx, pool, target, r, points, *svg, *asJSON, stdout)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	b, rs, err := burnDown(ctx, pool, target, *stages, *jobs, *workers, *concurrency)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	stop := rs.stop
	r.burn = b
	r.JobsPerCommit = r.JobsPerSec / r.CommitRate

	if *rate > 0 {
		n := int(*rate * duration.Seconds())
		progress("offering %.0f jobs/s for %s (%d jobs) to measure pickup latency", *rate, *duration, n)
		if err := offer(ctx, pool, *rate, n); err != nil {
			stop()
			return err
		}
		lastOffered, want := "offered", n
		if *stages == 2 {
			lastOffered, want = "b", *jobs+n
		}
		if err := rs.wait(ctx, pool, int64((*jobs+n)**stages), lastOffered, want); err != nil {
			stop()
			return err
		}
		r.PickupRate = *rate
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
	if *restJobs > 0 {
		progress("submitting %d jobs through the REST batch route", *restJobs)
		if r.RESTSubmitPerSec, err = restSubmit(ctx, pool, *restJobs); err != nil {
			return err
		}
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	r.RSSMB = float64(ru.Maxrss) / 1024

	if *asJSON {
		return json.NewEncoder(stdout).Encode(r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "stages\t%d\n", r.Stages)
	fmt.Fprintf(tw, "jobs (backlog)\t%d\n", r.Jobs)
	fmt.Fprintf(tw, "replicas × slots per stage\t%d × %d\n", r.Workers, r.Concurrency)
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

// cpuTimes returns the machine's busy CPU time so far (user, nice, system,
// irq and softirq of /proc/stat, in USER_HZ = 100 ticks; 0 off Linux) and
// this process's own CPU time.
func cpuTimes() (machine, self time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, self
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0, self
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, self
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// benchDatabase recreates the bench database next to the one in
// databaseURL, migrated, and returns its name.
func benchDatabase(ctx context.Context, databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", usagef("bench: DATABASE_URL: %v", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		name = "baton"
	}
	u.Path = "/" + name + "_bench"
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return "", fmt.Errorf("bench: connecting: %w", db.MapError(err))
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name + "_bench"}.Sanitize()+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("bench: dropping the previous bench database: %w", err)
	}
	if err := db.MigrateUp(ctx, u.String()); err != nil {
		return "", err
	}
	return name + "_bench", nil
}

// withDatabase is databaseURL naming another database.
func withDatabase(databaseURL, name string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", usagef("DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func dbName(u string) string {
	p, _ := url.Parse(u)
	return strings.TrimPrefix(p.Path, "/")
}

// commitRate measures durable one-row UPDATE commits per second with
// clients connections for d.
func commitRate(ctx context.Context, pool *pgxpool.Pool, clients int, d time.Duration) (float64, error) {
	for _, sql := range []string{
		"CREATE TABLE bench_tick (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0)",
		"INSERT INTO bench_tick SELECT g, 0 FROM generate_series(1, 1000) g",
		"CHECKPOINT",
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return 0, fmt.Errorf("bench: preparing the commit-rate table: %w", err)
		}
	}
	var commits atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				if _, err := pool.Exec(ctx, "UPDATE bench_tick SET v = v + 1 WHERE id = $1", (c*7919+i)%1000+1); err != nil {
					errs <- err
					return
				}
				commits.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(commits.Load()) / d.Seconds(), nil
}

func preload(ctx context.Context, pool *pgxpool.Pool, n int) error {
	batch := noopJobs(5000)
	for done := 0; done < n; {
		k := min(len(batch), n-done)
		if _, err := db.Submit(ctx, pool, batch[:k]...); err != nil {
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

// noopJobs is n jobs for queue a, the bench's first stage.
func noopJobs(n int) []db.NewJob {
	jobs := make([]db.NewJob, n)
	for i := range jobs {
		jobs[i] = db.NewJob{Queue: "a", Payload: []byte(`{"n":1}`)}
	}
	return jobs
}

var registerNoop sync.Once

func benchPipeline(stages, concurrency int) *worker.Pipeline {
	registerNoop.Do(func() {
		worker.Register("bench-noop", worker.HandlerFunc(func(ctx context.Context, job *worker.Job) (json.RawMessage, error) {
			return job.Payload, nil
		}))
	})
	yaml := fmt.Sprintf("stages:\n  - queue: a\n    handler: {go: bench-noop}\n    concurrency: %d\n", concurrency)
	yaml += fmt.Sprintf("  - queue: offered\n    handler: {go: bench-noop}\n    concurrency: %d\n", concurrency)
	if stages == 2 {
		yaml = strings.Replace(yaml, "handler: {go: bench-noop}\n", "handler: {go: bench-noop}\n    next: b\n", 2)
		yaml += fmt.Sprintf("  - queue: b\n    handler: {go: bench-noop}\n    concurrency: %d\n", concurrency)
	}
	p, err := worker.ParsePipeline([]byte(yaml))
	if err != nil {
		panic(err) // the bench's own pipeline
	}
	return p
}

// replicas are worker replicas running in this process.
type replicas struct {
	workers []*worker.Worker
	stop    func()
}

// startReplicas runs n worker replicas in this process, pruning by retain.
func startReplicas(ctx context.Context, target db.ConnectConfig, p *worker.Pipeline, n int, retain worker.Retention) (*replicas, error) {
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
		c.AppName, c.MaxConns = fmt.Sprintf("baton-bench-worker %d", i), worker.PoolSize(p)
		pool, err := db.Connect(ctx, c)
		if err != nil {
			rs.stop()
			return nil, err
		}
		pools = append(pools, pool)
		w, err := worker.New(pool, worker.Config{
			Pipeline: p, ID: fmt.Sprintf("bench-%d", i), Logger: slog.New(slog.DiscardHandler), Retention: retain,
			PollOnly: target.Pooler == db.TransactionPooler,
		})
		if err != nil {
			rs.stop()
			return nil, err
		}
		rs.workers = append(rs.workers, w)
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

// offer submits n single jobs to queue "offered" at rate per second.
// offer submits n jobs to queue "offered" at rate per second, open loop: at
// each moment it submits the jobs that are due by then, so a trickle goes in
// one job per statement and a high rate in small batches, and a slow submit
// is caught up rather than slowing the offered load.
func offer(ctx context.Context, pool *pgxpool.Pool, rate float64, n int) error {
	start := time.Now()
	job := db.NewJob{Queue: "offered", Payload: []byte(`{"n":1}`)}
	for sent := 0; sent < n; {
		due := min(n, int(rate*time.Since(start).Seconds())+1)
		if due <= sent {
			next := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			time.Sleep(time.Until(next))
			continue
		}
		batch := make([]db.NewJob, due-sent)
		for i := range batch {
			batch[i] = job
		}
		if _, err := db.Submit(ctx, pool, batch...); err != nil {
			return err
		}
		sent = due
	}
	return nil
}

// restSubmit serves the API on loopback in this process and submits n jobs
// through POST /v1/queues/rest/jobs/batch, 1,000 per request from 4 clients.
func restSubmit(ctx context.Context, pool *pgxpool.Pool, n int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- api.New(pool, api.Config{Logger: slog.New(slog.DiscardHandler)}).Serve(sctx, ln) }()
	defer func() { cancel(); <-served }()

	const perRequest, clients = 1000, 4
	var body bytes.Buffer
	body.WriteString(`{"jobs": [`)
	for i := range perRequest {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"payload": {"n": 1}}`)
	}
	body.WriteString(`]}`)
	requests := make(chan struct{})
	errs := make(chan error, clients)
	url := "http://" + ln.Addr().String() + "/v1/queues/rest/jobs/batch"
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range requests {
				resp, err := http.Post(url, "application/json", bytes.NewReader(body.Bytes()))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("bench: REST batch submit answered %s", resp.Status)
					return
				}
			}
		})
	}
	sent := 0
loop:
	for ; sent < n; sent += perRequest {
		select {
		case requests <- struct{}{}:
		case err := <-errs:
			close(requests)
			wg.Wait()
			return 0, err
		case <-ctx.Done():
			break loop
		}
	}
	close(requests)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(sent) / time.Since(start).Seconds(), nil
}
