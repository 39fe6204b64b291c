//go:build chaos

package chaos

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	pg       *cluster
	batonBin string
	repoRoot string
	full     = os.Getenv("CHAOS_PROFILE") == "full"
)

func TestMain(m *testing.M) {
	code := func() int {
		wd, _ := os.Getwd()
		repoRoot = filepath.Dir(wd)
		dir, err := os.MkdirTemp("", "baton-chaos")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		batonBin = filepath.Join(dir, "baton")
		if out, err := exec.Command("go", "build", "-o", batonBin, "../cmd/baton").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building baton: %v\n%s", err, out)
			return 1
		}
		pg, err = newCluster("")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos: no cluster of its own:", err)
			return 1
		}
		defer pg.drop()
		return m.Run()
	}()
	os.Exit(code)
}

// profile sizes a scenario: the short one runs in CI, the full one with make chaos.
func profile() (jobs, workers int, faultTime time.Duration) {
	if full {
		return 3000, 4, 30 * time.Second
	}
	return 300, 3, 8 * time.Second
}

// scenario is one fault-injection run.
type scenario struct {
	name    string
	load    loadOpts
	fault   func(ctx context.Context, e *env) int // runs until ctx ends; returns faults injected
	bin     string                                // default: the real build
	proxied bool                                  // the first worker reaches Postgres through a TCP proxy
	// failover runs the system on a primary of its own with a synchronous
	// streaming standby, through a multi-host URL that finds the writable one.
	failover bool
	check    func(t *testing.T, r report) // extra expectations
	// shapes runs shapesPipeline (fan-out, join, a periodic entry) in place
	// of the a -> b -> c pipeline, and checks it instead.
	shapes bool
	// quiesceWithin bounds the wait for quiescence. Default: 2 minutes.
	quiesceWithin time.Duration
	// burst submits the jobs as fast as the clients can, not spread over
	// the fault time, so that a backlog builds up.
	burst bool
}

// run starts the system, applies load and faults together, waits for
// quiescence and returns the checker's report, logging its figure line.
func run(t *testing.T, s scenario) report {
	jobs, workers, faultTime := profile()
	s.load.jobs = jobs
	if !s.burst {
		s.load.over = faultTime
	}
	bin := s.bin
	if bin == "" {
		bin = batonBin
	}
	c, standby := pg, (*cluster)(nil)
	if s.failover {
		c, standby = failoverPair(t)
	}
	config := pipeline
	if s.shapes {
		config, s.load.queue = shapesPipeline, "split"
	}
	e := start(t, c, standby, bin, strings.ReplaceAll(s.name, "-", "_"), config, workers, s.proxied)
	h := &history{}
	ctx, cancel := context.WithTimeout(context.Background(), faultTime)
	defer cancel()
	faults := 0
	var wg sync.WaitGroup
	if s.fault != nil {
		wg.Go(func() { faults = s.fault(ctx, e) })
	}
	loadCtx, stopLoad := context.WithTimeout(context.Background(), faultTime+2*time.Minute)
	defer stopLoad()
	e.load(loadCtx, h, s.load)
	wg.Wait()
	if s.shapes {
		e.stopTicks()
	}
	// Bound: every job's attempts, each waiting at most a lease plus backoff, plus the reaper.
	took, ok := e.quiesce(cmp.Or(s.quiesceWithin, 2*time.Minute))
	var r report
	if s.shapes {
		r = e.checkShapes(h)
	} else {
		r = e.check(h, s.load.isPoison)
	}
	r.Faults, r.QuiesceDuration = faults, took
	for _, p := range e.procs {
		r.Exits += p.exits()
	}
	t.Logf("%s: %s", s.name, r)
	if !ok {
		t.Errorf("%s: not quiescent within the bound", s.name)
	}
	if t.Failed() {
		t.Logf("worker logs (tail):\n%s", tail(e.logs("w"), 60))
	}
	return r
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

func (o loadOpts) isPoison(n int) bool {
	return o.poisonEvery > 0 && n%o.poisonEvery == o.poisonEvery-1
}

// requireClean asserts every promise: nothing lost or duplicated, and each
// stage ran exactly the acknowledged jobs (poison ones end dead in a).
func requireClean(t *testing.T, r report) {
	t.Helper()
	require.Zero(t, r.damage(), "%s", r)
	require.Zero(t, r.Collateral, "%s", r)
	require.Positive(t, r.Accepted)
	want := r.Accepted - r.Poison
	if r.Shapes {
		require.Equal(t, map[string]int{"split": want, "part": 3 * want, "joined": want, "ticks": r.Ticks}, r.SucceededPerQ, "%s", r)
		return
	}
	require.Equal(t, map[string]int{"a": want, "b": want, "c": want}, r.SucceededPerQ, "%s", r)
}

// every runs f at random intervals in [lo, hi) until ctx ends, counting faults.
func every(ctx context.Context, lo, hi time.Duration, f func() bool) int {
	n := 0
	for {
		select {
		case <-ctx.Done():
			return n
		case <-time.After(lo + rand.N(hi-lo)):
		}
		if ctx.Err() == nil && f() {
			n++
		}
	}
}

func killWorkers(ctx context.Context, e *env) int {
	return every(ctx, 300*time.Millisecond, 1500*time.Millisecond, func() bool {
		ws := e.workers()
		ws[rand.IntN(len(ws))].signal(syscall.SIGKILL)
		return true
	})
}

func terminateBackends(ctx context.Context, e *env) int {
	return every(ctx, 100*time.Millisecond, 400*time.Millisecond, func() bool {
		var n int
		err := e.pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM (
			SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'baton-worker %'
			ORDER BY random() LIMIT 2) s`).Scan(&n)
		return err == nil && n > 0
	})
}

// busiestWorker is the worker holding the most leases right now.
func busiestWorker(e *env) *proc {
	return e.workerLeasing(`SELECT leased_by FROM baton.jobs WHERE state = 'running'
		GROUP BY leased_by ORDER BY count(*) DESC LIMIT 1`)
}

// workerLeasing is the worker whose id the query returns, if any.
func (e *env) workerLeasing(query string) *proc {
	var id string
	_ = e.pool.QueryRow(context.Background(), query).Scan(&id)
	for _, w := range e.workers() {
		if w.id == id {
			return w
		}
	}
	return nil
}

// freeze stops the busiest worker with SIGSTOP for d, then resumes it: past
// its lease, it is a zombie whose late writes the fence must refuse.
func freeze(d time.Duration) func(ctx context.Context, e *env) int {
	return freezeWorker(d, busiestWorker)
}

// slowHolder is a worker running a slow job: frozen past its lease, it comes
// back while another worker is still re-running that job.
func slowHolder(e *env) *proc {
	return e.workerLeasing(`SELECT leased_by FROM baton.jobs WHERE state = 'running' AND payload ? 'slow' LIMIT 1`)
}

func freezeWorker(d time.Duration, pick func(*env) *proc) func(ctx context.Context, e *env) int {
	return func(ctx context.Context, e *env) int {
		return every(ctx, 200*time.Millisecond, 600*time.Millisecond, func() bool {
			w := pick(e)
			if w == nil {
				return false
			}
			w.signal(syscall.SIGSTOP)
			time.Sleep(d)
			w.signal(syscall.SIGCONT)
			return true
		})
	}
}

func restartPostgres(ctx context.Context, e *env) int {
	n := 0
	for _, mode := range []string{"fast", "immediate", "fast", "immediate"} {
		select {
		case <-ctx.Done():
			return n
		case <-time.After(1500 * time.Millisecond):
		}
		if err := e.c.restart(mode); err != nil {
			e.t.Error(err)
			return n
		}
		n++
	}
	return n
}

func rollingRestart(ctx context.Context, e *env) int {
	n := 0
	for ctx.Err() == nil {
		for _, w := range e.workers() {
			if ctx.Err() != nil {
				break
			}
			code, state, started, exited := w.terminate(syscall.SIGTERM, 30*time.Second)
			if !started {
				time.Sleep(50 * time.Millisecond) // between restarts: try again
				continue
			}
			if !exited || code != 0 {
				e.t.Errorf("worker %s: SIGTERM exit code %d (exited: %v; %s)", w.id, code, exited, state)
			}
			n++
			time.Sleep(300 * time.Millisecond)
		}
	}
	return n
}

// partition blackholes the proxied worker's traffic for 2 × lease (its leases
// expire and others take its jobs; its late writes must be fenced), or cuts
// its connections outright.
func partition(ctx context.Context, e *env) int {
	return every(ctx, 500*time.Millisecond, 1500*time.Millisecond, func() bool {
		if rand.IntN(2) == 0 {
			e.proxy.cut()
			return true
		}
		// Blackhole while the proxied worker holds leases, so they expire.
		for range 50 {
			var held int
			_ = e.pool.QueryRow(context.Background(), "SELECT count(*) FROM baton.jobs WHERE leased_by = 'w1' AND state = 'running'").Scan(&held)
			if held > 0 || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		e.proxy.blackhole(true)
		select {
		case <-ctx.Done():
		case <-time.After(2 * lease):
		}
		e.proxy.blackhole(false)
		return true
	})
}

func together(faults ...func(context.Context, *env) int) func(context.Context, *env) int {
	return func(ctx context.Context, e *env) int {
		var mu sync.Mutex
		var wg sync.WaitGroup
		total := 0
		for _, f := range faults {
			wg.Go(func() {
				n := f(ctx, e)
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		wg.Wait()
		return total
	}
}

func TestScenarios(t *testing.T) {
	scenarios := []scenario{
		{name: "kill-9", fault: killWorkers},
		{name: "backend-kill", fault: terminateBackends},
		{name: "pg-restart", fault: restartPostgres},
		// The frozen worker is one running a slow job, so it surely holds a
		// lease past its expiry when it wakes.
		{name: "zombie", load: loadOpts{slowEvery: 10}, fault: freezeWorker(3*lease, slowHolder), check: func(t *testing.T, r report) {
			require.Positive(t, r.ZombieRejected, "frozen workers' late writes must have been fenced")
		}},
		// A backlog (every job submitted at once): b's replicas each have
		// more due than their slots, and the limit still holds (the
		// limit-without-count build overshoots it so, below).
		{name: "backlog", burst: true, check: func(t *testing.T, r report) {
			require.Greater(t, r.MaxRunningB, 8, "b's replicas ran more than one replica's slots at once (and never above the limit: over_limit)")
		}},
		{name: "slow-handler", load: loadOpts{slowEvery: 20}, check: func(t *testing.T, r report) {
			require.Equal(t, 1, r.MaxAttempt, "heartbeats keep handlers longer than their lease from running twice")
		}},
		{name: "poison", load: loadOpts{poisonEvery: 50}, check: func(t *testing.T, r report) {
			require.Positive(t, r.Poison)
			require.Equal(t, maxAttempts, r.MaxAttempt, "a job whose handler crashes every time ends dead after max_attempts")
		}},
		{name: "lost-responses", load: loadOpts{lostResponses: true}, check: func(t *testing.T, r report) {
			require.Positive(t, r.Indeterminate, "first attempts timed out")
		}},
		{name: "rolling-sigterm", fault: rollingRestart},
		{name: "network-partition", proxied: true, fault: partition},
		{name: "everything", load: loadOpts{lostResponses: true},
			fault: together(killWorkers, terminateBackends, restartPostgres, freeze(3*lease))},
		// Fan-out, join and a periodic entry under the same faults: every
		// fan-out joined once, no tick enqueued twice.
		{name: "shapes", shapes: true, load: loadOpts{lostResponses: true},
			fault: together(killWorkers, terminateBackends, restartPostgres, freeze(3*lease)), check: func(t *testing.T, r report) {
				require.Positive(t, r.Ticks, "%s", r)
				require.LessOrEqual(t, r.Ticks, r.TickBound, "%s", r)
			}},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			r := run(t, s)
			requireClean(t, r)
			if s.check != nil {
				s.check(t, r)
			}
		})
	}
	// Without heartbeats, a handler slower than its lease is reclaimed and run
	// again; only the run holding the current lease may commit. Each such job
	// loses every lease, so after the first it runs alone (crash isolation)
	// until its attempts are used up: a worker to itself for each run, which
	// makes quiescence slow.
	t.Run("slow-handler-no-heartbeat", func(t *testing.T) {
		r := run(t, scenario{name: "slow-handler-no-heartbeat", bin: buildPatched(t, []patch{noHeartbeat}),
			load: loadOpts{slowEvery: 50}, quiesceWithin: 10 * time.Minute})
		require.Zero(t, r.damage(), "%s", r)
		require.Greater(t, r.MaxAttempt, 1, "slow handlers were run again: %s", r)
		require.Positive(t, r.ZombieRejected, "late completions were fenced: %s", r)
	})
	// A job that kills the worker running it, every time, takes no bystander
	// with it: the other jobs of that worker lose their lease too, but a
	// lease lost beside others is not counted, and such jobs run alone next.
	// Only the culprit, run alone, loses leases that count: it ends dead
	// after max_attempts, its error saying its worker died, and how often.
	t.Run("poison-kills-worker", func(t *testing.T) {
		r := run(t, scenario{name: "poison-kills-worker", load: loadOpts{poisonEvery: 100, crash: true}})
		requireClean(t, r)
		require.Positive(t, r.Poison)
		for _, e := range r.PoisonErrors {
			require.Regexp(t, `^lease expired: worker w\d+ died or froze while this job ran \(\d+ times\)$`, e)
		}
	})
}

// TestCheckerCatchesBrokenBuilds runs scenarios against builds with a
// safeguard removed. A checker that passes them would be blind.
func TestCheckerCatchesBrokenBuilds(t *testing.T) {
	broken := []struct {
		name    string
		patches []patch
		load    loadOpts
		fault   func(context.Context, *env) int
		burst   bool
	}{
		{
			name: "no-completion-fence",
			patches: []patch{
				{
					gen,
					"    WHERE j.id = i.id\n      AND j.lease_token = i.lease_token\n      AND j.state = i.state\n",
					"    WHERE j.id = i.id\n",
				},
				// Nor does its heartbeat stop a handler whose lease it
				// finds lost: otherwise the zombie completes only when its
				// handler happens to return before that heartbeat, a race
				// on waking that CI once lost with no damage done.
				{"worker/lease.go", "\t\t\tin.cancel(errLeaseLost)\n", "\t\t\t_ = in\n"},
				// Nor does the zombie's own process claiming the reaped job
				// again stop its earlier run: CI once saw the woken worker
				// claim it back before its handler returned, and the only
				// zombie stopped, damage 0 and zombie_rejected 1.
				{"worker/stage.go", "\t\tearlier.cancel(errLeaseLost)\n", "\t\t_ = earlier\n"},
			},
			// A zombie that held a slow job completes it while another
			// worker is still re-running it.
			load:  loadOpts{slowEvery: 10},
			fault: freezeWorker(2*lease, slowHolder),
		},
		{
			// The reaper as River's first rescuer had it: read without a
			// lock, then write without re-checking state. A 3 s pause, taken
			// once when something expired, stands for the round trip between
			// its two queries.
			name: "reaper-without-state-guard",
			patches: []patch{
				{
					gen,
					"    LIMIT $1::integer\n    FOR UPDATE SKIP LOCKED\n), reaped AS (",
					"    LIMIT $1::integer\n), reaped AS (",
				},
				{
					gen,
					"    WHERE j.id = e.id\n      AND j.state = 'running'\n      AND j.lease_expires_at < now()\n",
					"    WHERE j.id = e.id\n      AND (SELECT count(pg_sleep(3)) FROM (SELECT FROM expired LIMIT 1) one) >= 0\n",
				},
			},
			// The frozen worker's leases expire within a lease of the stop
			// (heartbeats come every lease/3), and a reaper reads them within
			// a maintenance interval of that: before the worker wakes at
			// lease + 1.5 s, and less than 3 s before it, so the worker's
			// completions land between the reaper's read and its write.
			// (With a shorter pause CI saw runs where they never did.)
			load:  loadOpts{slowEvery: 10},
			fault: freeze(lease + 1500*time.Millisecond),
		},
		{
			// A grouped claim (b is fair) that takes the global limit for
			// its room without counting the jobs already running.
			name: "limit-without-count",
			patches: []patch{{gen,
				"WITH RECURSIVE room AS MATERIALIZED (\n    SELECT least($2::integer, coalesce((\n        SELECT greatest(0, l.n - (SELECT count(*) FROM baton.jobs r WHERE r.queue = $3::text AND r.state = 'running'))",
				"WITH RECURSIVE room AS MATERIALIZED (\n    SELECT least($2::integer, coalesce((\n        SELECT greatest(0, l.n)"}},
			// With the jobs spread over the fault time, b rarely had more
			// due than one replica's 8 slots, and such a build passed on
			// a fast machine: a backlog lets each replica fill its slots.
			burst: true,
		},
	}
	for _, b := range broken {
		t.Run(b.name, func(t *testing.T) {
			bin := buildPatched(t, b.patches)
			r := run(t, scenario{name: "broken-" + b.name, bin: bin, load: b.load, fault: b.fault, burst: b.burst})
			require.Positive(t, r.damage(), "the checker passed a build with %s: %s", b.name, r)
			t.Logf("checker caught %s: yes (damage=%d)", b.name, r.damage())
		})
	}
}

// patch replaces old with new in a file of the repository.
type patch struct{ file, old, new string }

const gen = "internal/store/jobs.sql.gen.go"

// noHeartbeat is a build whose workers never extend their leases.
var noHeartbeat = patch{"worker/lease.go",
	"func (s *stage) heartbeat(ctx context.Context) {\n",
	"func (s *stage) heartbeat(ctx context.Context) {\n\treturn\n"}

// buildPatched builds baton from a copy of the repository with text patches applied.
func buildPatched(t *testing.T, patches []patch) string {
	t.Helper()
	dir := t.TempDir()
	files, err := exec.Command("git", "-C", repoRoot, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	require.NoError(t, err)
	for _, f := range strings.Fields(string(files)) {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			continue // deleted in the work tree
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	for _, p := range patches {
		path := filepath.Join(dir, p.file)
		src, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Contains(t, string(src), p.old, "patch of %s no longer applies", p.file)
		require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(src), p.old, p.new, 1)), 0o644))
	}
	bin := filepath.Join(dir, "baton-broken")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/baton")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}
