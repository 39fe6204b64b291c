//go:build chaos

package chaos

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// The pressure phases of the public Postgres job-queue benchmark
// (postgresql-job-queue-benchmarking), run here without Docker against any
// adapter of its contract (baton bench --adapter by default) on a cluster
// of this test's own: make bench-pressure. BATON_PRESSURE names the phases,
// name=duration, comma-separated ("1": defaultPhases, "short": each of them
// for 20 s). Skipped without it: the default phases take over an hour.
//
//	PRESSURE_ADAPTER  the adapter's command line (default: baton bench --adapter)
//	PRESSURE_RATE     the offered jobs/s (default: half the clean peak, found
//	                  with PRODUCER_MODE=depth-target for PRESSURE_PEAK, 60s)
//	PRESSURE_OUT      where the phase table goes (default: the temp dir)
//
// Phases: clean, idle-in-tx (one connection holds an xid), active-readers
// (4 connections, each in one REPEATABLE READ transaction for the phase,
// counting the first event table of the adapter's manifest every 100 ms,
// as the harness's hook does; PRESSURE_MANIFEST, default
// bench/portable/adapter.json),
// high-load (1.5 × the rate), recovery (as clean, after pressure),
// kill-replica (SIGKILL the adapter, start it again), pg-restart,
// terminate (pg_terminate_backend of one adapter connection every 0.5 s),
// idle-conns (300 idle connections). Per phase, besides the adapter's
// samples and the tables' state, the statements that took the server's
// time (pg_stat_statements), so that a phase that slows says why.
const defaultPhases = "clean=10m,idle-in-tx=10m,recovery=5m,active-readers=10m,recovery=5m,high-load=5m,recovery=5m," +
	"kill-replica=2m,pg-restart=2m,terminate=2m,idle-conns=2m,recovery=2m"

// phaseNames are the phases apply knows.
var phaseNames = []string{"clean", "idle-in-tx", "active-readers", "high-load", "recovery", "kill-replica", "pg-restart", "terminate", "idle-conns"}

// pressurePhase is one phase of the run.
type pressurePhase struct {
	name string
	d    time.Duration
}

func parsePhases(spec string) ([]pressurePhase, error) {
	short := spec == "short"
	if spec == "1" || short {
		spec = defaultPhases
	}
	var phases []pressurePhase
	for f := range strings.SplitSeq(spec, ",") {
		name, dur, ok := strings.Cut(strings.TrimSpace(f), "=")
		d, err := time.ParseDuration(dur)
		if !ok || err != nil || d <= 0 {
			return nil, fmt.Errorf("phase %q: want name=duration", f)
		}
		if !slices.Contains(phaseNames, name) {
			return nil, fmt.Errorf("phase %q: unknown", name)
		}
		if short {
			d = 20 * time.Second
		}
		phases = append(phases, pressurePhase{name, d})
	}
	return phases, nil
}

// adapterSample is one line of an adapter's samples.
type adapterSample struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Kind   string  `json:"kind"`
}

// phaseFigures is what a phase measured.
type phaseFigures struct {
	name                         string
	enqueue, complete            []float64
	p50, p99                     []float64
	dead, tableBytes, indexBytes int64
	oldestXmin                   int64
	deadMax                      int64   // the most dead rows a sample saw
	cleanDead                    int64   // the clean phase's deadMax, if it ran before; else -1
	cleanAfter                   float64 // seconds into the phase until dead rows above cleanDead were back within it; -1: never
	statements                   []statementCost
	seconds                      float64
}

// statementCost is one statement's share of a phase's server time.
type statementCost struct {
	name                         string
	calls, totalMs, blocks, rows float64
}

// pressureRun is a run in progress: the cluster, the adapter, the phase.
type pressureRun struct {
	t       *testing.T
	c       *cluster
	db      string
	argv    []string
	env     []string
	control string // PRODUCER_RATE_CONTROL_FILE
	// From the adapter's manifest, as the harness reads it: the event
	// tables (their dead rows and sizes), and what the readers run.
	tables    []string
	readers   int
	readerSQL string
	mu        sync.Mutex
	phase     *phaseFigures
	adapter   *exec.Cmd
	done      chan error
}

func TestPressure(t *testing.T) {
	spec := os.Getenv("BATON_PRESSURE")
	if spec == "" {
		t.Skip("BATON_PRESSURE names the phases (make bench-pressure)")
	}
	phases, err := parsePhases(spec)
	require.NoError(t, err)
	c := &cluster{version: pg.version, name: clusterName("pressure"), port: freePort()}
	require.NoError(t, c.create("--start", "-o", "max_connections=400", "-o", "fsync=on", "-o", "synchronous_commit=on",
		"-o", "shared_preload_libraries=pg_stat_statements"))
	t.Cleanup(c.drop)
	require.NoError(t, c.waitReady(30*time.Second))
	r := &pressureRun{t: t, c: c, db: "baton_bench", control: filepath.Join(t.TempDir(), "producer_rate.txt")}
	r.argv = strings.Fields(cmp.Or(os.Getenv("PRESSURE_ADAPTER"), batonBin+" bench --adapter"))
	r.readManifest(cmp.Or(os.Getenv("PRESSURE_MANIFEST"), "../bench/portable/adapter.json"))
	r.exec(t, "postgres", "CREATE DATABASE baton_bench")
	r.exec(t, "postgres", "CREATE EXTENSION pg_stat_statements")
	sampleEvery := "5"
	if spec == "short" {
		sampleEvery = "1"
	}
	r.env = append(os.Environ(), "DATABASE_URL="+c.url(r.db), "SCENARIO=long_horizon", "WORKER_COUNT=64",
		"JOB_PAYLOAD_BYTES=256", "JOB_WORK_MS=1", "SAMPLE_EVERY_S="+sampleEvery, "PRODUCER_RATE_CONTROL_FILE="+r.control)

	rate, err := strconv.ParseFloat(os.Getenv("PRESSURE_RATE"), 64)
	if err != nil || rate <= 0 {
		peakFor := 60 * time.Second
		if spec == "short" {
			peakFor = 15 * time.Second
		}
		peak := r.peak(peakFor) // in a database of its own: its backlog stays there
		rate = peak / 2
		t.Logf("clean peak (depth-target, %s): %.0f jobs/s; offering %.0f", peakFor, peak, rate)
	}
	require.NoError(t, os.WriteFile(r.control, []byte(strconv.FormatFloat(rate, 'f', 0, 64)), 0o600))
	r.start("PRODUCER_MODE=fixed", fmt.Sprintf("PRODUCER_RATE=%.0f", rate))

	var figures []*phaseFigures
	cleanDead := int64(-1) // the clean phase's most dead rows, once it ran
	for _, p := range phases {
		f := &phaseFigures{name: p.name, cleanDead: cleanDead, cleanAfter: -1}
		r.mu.Lock()
		r.phase = f
		r.mu.Unlock()
		t.Logf("phase %s for %s", p.name, p.d)
		ctx, end := context.WithCancel(context.Background())
		r.exec(t, "postgres", "SELECT pg_stat_statements_reset()")
		r.apply(ctx, p.name, rate)
		r.watchDead(f, p.d) // for the phase's length
		f.seconds = p.d.Seconds()
		r.measure(f) // before the phase lets go (of a held xid, say)
		end()
		figures = append(figures, f)
		if p.name == "clean" {
			cleanDead = f.deadMax
		}
	}
	require.NoError(t, r.stop(), "SIGTERM ends the adapter cleanly")
	lost := r.drain()

	table := pressureTable(figures, rate, lost)
	t.Log("\n" + table)
	out := cmp.Or(os.Getenv("PRESSURE_OUT"), filepath.Join(os.TempDir(), "pressure-"+time.Now().UTC().Format("20060102-150405")+".md"))
	require.NoError(t, os.WriteFile(out, []byte(table), 0o644))
	t.Logf("phase table written to %s", out)
	require.Zero(t, lost, "every job submitted is done once the queue drains")
}

// apply starts what a phase does; it stops when ctx ends.
func (r *pressureRun) apply(ctx context.Context, phase string, rate float64) {
	t := r.t
	switch phase {
	case "idle-in-tx":
		conn, err := pgx.Connect(ctx, r.c.url(r.db))
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "BEGIN; SELECT txid_current()")
		require.NoError(t, err)
		go func() { <-ctx.Done(); conn.Close(context.Background()) }()
	case "active-readers":
		// As the harness's hook: each reader holds one REPEATABLE READ
		// transaction for the whole phase (its snapshot holds back vacuum
		// too) and scans the manifest's first event table, 100 ms apart.
		for range r.readers {
			go func() {
				conn, err := pgx.Connect(ctx, r.c.url(r.db))
				if err != nil {
					return
				}
				defer conn.Close(context.Background())
				if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
					return
				}
				for ctx.Err() == nil {
					_, _ = conn.Exec(ctx, r.readerSQL)
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond): // the harness's pause
					}
				}
			}()
		}
	case "high-load":
		require.NoError(t, os.WriteFile(r.control, []byte(strconv.FormatFloat(1.5*rate, 'f', 0, 64)), 0o600))
		go func() {
			<-ctx.Done()
			_ = os.WriteFile(r.control, []byte(strconv.FormatFloat(rate, 'f', 0, 64)), 0o600)
		}()
	case "kill-replica":
		r.mu.Lock()
		cmd, done := r.adapter, r.done
		r.mu.Unlock()
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		r.start("PRODUCER_MODE=fixed") // at the control file's rate
	case "pg-restart":
		require.NoError(t, r.c.restart("fast"))
	case "terminate":
		go func() {
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				r.exec(t, "postgres", fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM (
					SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND application_name LIKE 'baton%%'
					ORDER BY random() LIMIT 1) p`, r.db))
			}
		}()
	case "idle-conns":
		pool, err := pgxpool.New(ctx, r.c.url("postgres")+"&pool_max_conns=300&pool_min_conns=300")
		require.NoError(t, err)
		go func() { <-ctx.Done(); pool.Close() }()
	}
}

// start runs the adapter with extra environment, reading its samples into
// the current phase.
func (r *pressureRun) start(extra ...string) {
	cmd := exec.Command(r.argv[0], r.argv[1:]...)
	cmd.Env = append(slices.Clone(r.env), extra...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(r.t, err)
	require.NoError(r.t, cmd.Start())
	done := make(chan error, 1)
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			var s adapterSample
			if json.Unmarshal(lines.Bytes(), &s) != nil || s.Kind != "adapter" {
				continue
			}
			r.mu.Lock()
			if f := r.phase; f != nil {
				switch s.Metric {
				case "enqueue_rate":
					f.enqueue = append(f.enqueue, s.Value)
				case "completion_rate":
					f.complete = append(f.complete, s.Value)
				case "claim_p50_ms":
					f.p50 = append(f.p50, s.Value)
				case "claim_p99_ms":
					f.p99 = append(f.p99, s.Value)
				}
			}
			r.mu.Unlock()
		}
		done <- cmd.Wait()
	}()
	r.mu.Lock()
	r.adapter, r.done = cmd, done
	r.mu.Unlock()
}

// stop sends SIGTERM and waits (at most 10 s) for a clean exit.
func (r *pressureRun) stop() error {
	r.mu.Lock()
	cmd, done := r.adapter, r.done
	r.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("the adapter did not exit within 10 s of SIGTERM")
	}
}

// peak runs the adapter in depth-target mode for d and returns its median
// completion rate after the first quarter.
func (r *pressureRun) peak(d time.Duration) float64 {
	f := &phaseFigures{name: "peak"}
	r.mu.Lock()
	r.phase = f
	r.mu.Unlock()
	r.exec(r.t, "postgres", "CREATE DATABASE baton_peak")
	defer r.exec(r.t, "postgres", "DROP DATABASE baton_peak WITH (FORCE)")
	r.start("PRODUCER_MODE=depth-target", "TARGET_DEPTH=5000", "DATABASE_URL="+r.c.url("baton_peak"))
	time.Sleep(d) // a phase's length, not a wait for a signal
	require.NoError(r.t, r.stop())
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(r.t, f.complete, "the adapter wrote no samples")
	return median(f.complete[len(f.complete)/4:])
}

// readManifest takes the event tables from the adapter's manifest
// (adapter.json), and the readers' count and scan as the harness's
// active-readers hook: ACTIVE_READER_COUNT (4) readers running
// ACTIVE_READER_SQL (a count of the first event table).
func (r *pressureRun) readManifest(path string) {
	raw, err := os.ReadFile(path)
	require.NoError(r.t, err, "PRESSURE_MANIFEST names the adapter's adapter.json")
	var m struct {
		EventTables []string `json:"event_tables"`
	}
	require.NoError(r.t, json.Unmarshal(raw, &m), path)
	require.NotEmpty(r.t, m.EventTables, "%s names no event_tables", path)
	r.tables = m.EventTables
	r.readers = 4
	if n, err := strconv.Atoi(os.Getenv("ACTIVE_READER_COUNT")); err == nil && n >= 0 {
		r.readers = n
	}
	r.readerSQL = cmp.Or(os.Getenv("ACTIVE_READER_SQL"), "SELECT count(*) FROM "+m.EventTables[0])
}

// eventTables are the manifest's tables ($1) whose dead rows and sizes a
// phase records.
const eventTables = `FROM pg_stat_user_tables s
	WHERE s.schemaname || '.' || s.relname = ANY ($1::text[])`

// measure records the event tables' dead rows and sizes and the oldest
// snapshot's age at a phase's end.
func (r *pressureRun) measure(f *phaseFigures) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.c.url(r.db))
	require.NoError(r.t, err)
	defer conn.Close(ctx)
	require.NoError(r.t, conn.QueryRow(ctx, `
		SELECT coalesce(sum(s.n_dead_tup), 0)::bigint, coalesce(sum(pg_relation_size(s.relid)), 0)::bigint,
		       coalesce(sum(pg_indexes_size(s.relid)), 0)::bigint,
		       (SELECT coalesce(max(age(backend_xmin)), 0) FROM pg_stat_activity)::bigint
		`+eventTables, r.tables).Scan(&f.dead, &f.tableBytes, &f.indexBytes, &f.oldestXmin))
	f.statements = r.statements()
}

// watchDead samples the event tables' dead rows every 2 s for d: the most
// a sample saw, and when they were first back within the clean phase's
// after a sample above it (a phase that begins within it and grows past it
// is never back).
func (r *pressureRun) watchDead(f *phaseFigures, d time.Duration) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.c.url(r.db))
	require.NoError(r.t, err)
	defer conn.Close(ctx)
	began := time.Now()
	end := time.After(d) // the phase's length, not a wait for a signal
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-end:
			return
		case <-tick.C:
		}
		var dead int64
		if err := conn.QueryRow(ctx, "SELECT coalesce(sum(s.n_dead_tup), 0)::bigint "+eventTables, r.tables).Scan(&dead); err != nil {
			continue // a phase may restart the server under it
		}
		above := f.deadMax > f.cleanDead
		f.deadMax = max(f.deadMax, dead)
		if f.cleanDead >= 0 && above && f.cleanAfter < 0 && dead <= f.cleanDead {
			f.cleanAfter = time.Since(began).Seconds()
		}
	}
}

// statements are the five statements that took the most of the server's
// time in the adapter's database since the phase began (the view lives in
// the postgres database).
func (r *pressureRun) statements() []statementCost {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.c.url("postgres"))
	require.NoError(r.t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		SELECT coalesce(substring(s.query FROM '-- name: (\w+)'), left(regexp_replace(s.query, '\s+', ' ', 'g'), 40)),
		       s.calls::float8, s.total_exec_time, (s.shared_blks_hit + s.shared_blks_read)::float8, s.rows::float8
		FROM pg_stat_statements s
		WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = $1)
		ORDER BY s.total_exec_time DESC LIMIT 5`, r.db)
	require.NoError(r.t, err)
	costs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (statementCost, error) {
		var c statementCost
		return c, row.Scan(&c.name, &c.calls, &c.totalMs, &c.blocks, &c.rows)
	})
	require.NoError(r.t, err)
	return costs
}

// drain runs the adapter with nothing offered until every job is done, and
// returns how many jobs are not succeeded then (lost, or stuck).
func (r *pressureRun) drain() int64 {
	r.mu.Lock()
	r.phase = nil // the drain's samples belong to no phase
	r.mu.Unlock()
	require.NoError(r.t, os.WriteFile(r.control, []byte("0"), 0o600))
	r.start("PRODUCER_MODE=fixed")
	defer func() { require.NoError(r.t, r.stop()) }()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.c.url(r.db))
	require.NoError(r.t, err)
	defer conn.Close(ctx)
	var left int64
	for range 600 { // a lease (30 s) and the jobs behind it, at most 10 minutes
		require.NoError(r.t, conn.QueryRow(ctx, "SELECT count(*) FROM baton.jobs WHERE state <> 'succeeded'").Scan(&left))
		if left == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	return left
}

func (r *pressureRun) exec(t *testing.T, db, sql string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.c.url(db))
	if err != nil {
		t.Logf("%s: %v", sql, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Logf("%s: %v", sql, err)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

// pressureTable is the run's table, one row a phase, in Markdown.
func pressureTable(figures []*phaseFigures, rate float64, lost int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "offered %.0f jobs/s; jobs not done after the drain: %d\n\n", rate, lost)
	b.WriteString("| phase | completion ÷ offered | claim p50 ms (median) | claim p99 ms (median / max) | dead rows at end (most) | back within clean's dead rows after | tables MB | indexes MB | oldest xmin age |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, f := range figures {
		ratio := 0.0
		if e := mean(f.enqueue); e > 0 {
			ratio = mean(f.complete) / e
		}
		back := "—"
		switch {
		case f.cleanDead < 0:
		case f.deadMax <= f.cleanDead:
			back = "within throughout"
		case f.cleanAfter >= 0:
			back = fmt.Sprintf("%.0f s", f.cleanAfter)
		default:
			back = "never"
		}
		fmt.Fprintf(&b, "| %s | %.3f | %.1f | %.1f / %.1f | %d (%d) | %s | %.1f | %.1f | %d |\n", f.name, ratio, median(f.p50),
			median(f.p99), slices.Max(append([]float64{0}, f.p99...)), f.dead, f.deadMax, back,
			float64(f.tableBytes)/1e6, float64(f.indexBytes)/1e6, f.oldestXmin)
	}
	b.WriteString("\nThe statements that took the server's time, per phase (pg_stat_statements, the five with the most):\n\n")
	b.WriteString("| phase | statement | calls/s | share of the phase's seconds | ms a call | blocks a call | rows a call |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, f := range figures {
		for _, c := range f.statements {
			calls := max(c.calls, 1)
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.2f | %.2f | %.0f | %.1f |\n", f.name, c.name, c.calls/f.seconds,
				c.totalMs/1000/f.seconds, c.totalMs/calls, c.blocks/calls, c.rows/calls)
		}
	}
	return b.String()
}
