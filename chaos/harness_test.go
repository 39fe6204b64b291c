//go:build chaos

package chaos

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// Timing of the system under test: short leases so faults heal quickly.
const (
	lease       = 2 * time.Second
	pollEvery   = 50 * time.Millisecond
	maintenance = time.Second // the worker's and serve's reaper interval
	maxAttempts = 5
	// bLimit is stage b's global concurrency: its replicas' 3 x 8 slots
	// share it, and the checker replays the history to check that no more
	// of b's jobs ever ran at once.
	bLimit = 12
)

// pipeline is the three-stage pipeline every scenario drives. A payload
// marked poison crashes its handler every time (SIGSEGV); one marked crash
// kills the worker running it, a crash loop across the fleet; one marked
// slow runs for twice the lease, heartbeating. Stage b has a global
// concurrency and shares its slots fairly between the jobs' groups (every
// job is submitted in one of five).
var pipeline = fmt.Sprintf(`
poll_interval: %s
shutdown_grace: 5s
stages:
  - queue: a
    handler: {exec: ["sh", "-c", %q]}
    next: b
    lease: %s
    max_attempts: %d
    concurrency: 8
  - queue: b
    handler: {exec: ["sh", "-c", "sleep 0.01; cat"]}
    next: c
    lease: %s
    max_attempts: %d
    concurrency: 8
    global_concurrency: %d
    fair: true
  - queue: c
    handler: {exec: ["cat"]}
    lease: %s
    max_attempts: %d
    concurrency: 8
`, pollEvery, `p=$(cat); case "$p" in *poison*) kill -SEGV $$;; *crash*) kill -9 $PPID; exit 1;; *slow*) sleep 4;; esac; sleep 0.01; printf "%s" "$p"`,
	lease, maxAttempts, lease, maxAttempts, bLimit, lease, maxAttempts)

// shapesPipeline drives the job shapes of issue 22: each split job fans
// out to three part jobs, whose join hands one job to joined, and the
// periodic entry tick enqueues a job in ticks every second.
var shapesPipeline = fmt.Sprintf(`
poll_interval: %s
shutdown_grace: 5s
periodic:
  - name: tick
    queue: ticks
    schedule: "@every 1s"
stages:
  - queue: split
    handler: {exec: ["sh", "-c", %q]}
    fan_out: true
    next: part
    lease: %s
    max_attempts: %d
  - queue: part
    handler: {exec: ["sh", "-c", "sleep 0.01; cat"]}
    join: true
    next: joined
    lease: %s
    max_attempts: %d
  - queue: joined
    handler: {exec: ["cat"]}
    lease: %s
    max_attempts: %d
  - queue: ticks
    handler: {exec: ["cat"]}
    lease: %s
    max_attempts: %d
`, pollEvery, `p=$(cat); printf '[{"i":0,"p":%s},{"i":1,"p":%s},{"i":2,"p":%s}]' "$p" "$p" "$p"`,
	lease, maxAttempts, lease, maxAttempts, lease, maxAttempts, lease, maxAttempts)

// proc is a supervised baton process: restarted when it exits unless stopping.
type proc struct {
	id    string
	args  []string
	dbURL string // where it connects
	mu    sync.Mutex
	cmd   *exec.Cmd
	began time.Time // when the current incarnation was started
	done  chan struct{}
	exit  []int    // exit codes seen
	state []string // how each incarnation ended (os.ProcessState.String)
}

// env is one scenario's running system.
type env struct {
	t        *testing.T
	c        *cluster
	bin      string
	db       string // the scenario's database
	dbURL    string
	dir      string
	standby  *cluster // c's, in the failover scenario
	pool     *pgxpool.Pool
	api      string
	procs    []*proc
	proxy    *proxy // between the first worker and Postgres, when asked for
	stopping chan struct{}
	wg       sync.WaitGroup
	began    time.Time     // when the workers were started
	ticked   time.Duration // how long the periodic entry ran (stopTicks)
}

// start creates the scenario's database and starts serve and the workers;
// with proxied, the first worker reaches Postgres through a TCP proxy; with
// a standby, everything connects through a URL naming both servers.
func start(t *testing.T, c, standby *cluster, bin, name, config string, workers int, proxied bool) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, c: c, standby: standby, bin: bin, dir: dir, stopping: make(chan struct{}), db: "chaos_" + name}
	e.dbURL = c.url(e.db)
	if standby != nil {
		e.dbURL = failoverURL(c, standby, e.db)
	}
	require.NoError(t, c.dropDatabase(e.db))
	cmd := exec.Command(bin, "migrate", "up")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+e.dbURL)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	e.pool, err = pgxpool.New(context.Background(), e.dbURL)
	require.NoError(t, err)
	file := filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(file, []byte(config), 0o600))

	apiPort := freePort()
	e.api = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	e.spawn("api", e.dbURL, "serve", "--addr", fmt.Sprintf("127.0.0.1:%d", apiPort))
	for i := 1; i <= workers; i++ {
		id, url := fmt.Sprintf("w%d", i), e.dbURL
		if proxied && i == 1 {
			e.proxy, err = newProxy(fmt.Sprintf("127.0.0.1:%d", c.port))
			require.NoError(t, err)
			url = strings.Replace(url, fmt.Sprintf("127.0.0.1:%d", c.port), e.proxy.addr(), 1)
		}
		e.spawn(id, url, "worker", "--config", file, "--id", id)
	}
	e.began = time.Now()
	require.Eventually(t, func() bool {
		resp, err := http.Get(e.api + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 20*time.Millisecond)
	t.Cleanup(e.stop)
	return e
}

// spawn starts a supervised process; its output goes to DIR/ID.log.
func (e *env) spawn(id, dbURL string, args ...string) *proc {
	p := &proc{id: id, args: args, dbURL: dbURL}
	e.procs = append(e.procs, p)
	e.run(p)
	e.wg.Go(func() {
		for {
			p.mu.Lock()
			done := p.done
			p.mu.Unlock()
			select {
			case <-e.stopping:
				return
			case <-done:
			}
			select {
			case <-e.stopping:
				return
			case <-time.After(100 * time.Millisecond): // a supervisor's restart delay
			}
			e.run(p)
		}
	})
	return p
}

func (e *env) run(p *proc) {
	log, err := os.OpenFile(filepath.Join(e.dir, p.id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(e.t, err)
	cmd := exec.Command(e.bin, p.args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+p.dbURL)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(e.t, cmd.Start())
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.began = cmd, done, time.Now()
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		state := fmt.Sprintf("pid %d: %v (wait error: %v)", cmd.Process.Pid, cmd.ProcessState, err)
		if cmd.ProcessState.ExitCode() != 0 {
			fmt.Fprintf(log, "chaos harness: %s\n", state)
		}
		log.Close()
		p.mu.Lock()
		p.exit = append(p.exit, cmd.ProcessState.ExitCode())
		p.state = append(p.state, state)
		p.mu.Unlock()
		close(done)
	}()
}

// startupGrace is how long a new incarnation gets before terminate signals it.
const startupGrace = 300 * time.Millisecond

// terminate sends sig to the current incarnation, if it is running, and
// waits for that incarnation to end; it returns its exit code and how it
// ended. started is false if no incarnation was running (between restarts).
//
// A process that is younger than startupGrace is given time to start first:
// a signal that arrives before the Go runtime has installed the program's
// handler kills any Go program, Baton or not, and says nothing about Baton.
func (p *proc) terminate(sig syscall.Signal, limit time.Duration) (code int, state string, started, exited bool) {
	p.mu.Lock()
	cmd, done, began := p.cmd, p.done, p.began
	p.mu.Unlock()
	time.Sleep(time.Until(began.Add(startupGrace)))
	p.mu.Lock()
	select {
	case <-done:
		p.mu.Unlock()
		return 0, "", false, false
	default:
	}
	_ = cmd.Process.Signal(sig)
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.exit[len(p.exit)-1], p.state[len(p.state)-1], true, true
	case <-time.After(limit):
		return 0, "", true, false
	}
}

// signal sends sig to the process's current incarnation.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.cmd.Process.Signal(sig)
}

// exits counts the incarnations that ended.
func (p *proc) exits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.exit)
}

// waitExit waits for the current incarnation to exit and returns its code.
func (p *proc) waitExit(limit time.Duration) (int, bool) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.exit[len(p.exit)-1], true
	case <-time.After(limit):
		return 0, false
	}
}

func (e *env) workers() []*proc {
	var ws []*proc
	for _, p := range e.procs {
		if p.id != "api" {
			ws = append(ws, p)
		}
	}
	return ws
}

// stop terminates every process (SIGCONT first, in case one is stopped).
func (e *env) stop() {
	select {
	case <-e.stopping:
		return
	default:
	}
	close(e.stopping)
	for _, p := range e.procs {
		p.signal(syscall.SIGCONT)
		p.signal(syscall.SIGTERM)
	}
	for _, p := range e.procs {
		if _, ok := p.waitExit(20 * time.Second); !ok {
			p.signal(syscall.SIGKILL)
			p.waitExit(5 * time.Second)
		}
	}
	e.wg.Wait()
	e.pool.Close()
	if e.proxy != nil {
		e.proxy.close()
	}
}

// logs returns what the processes whose id starts with prefix wrote.
func (e *env) logs(prefix string) string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(e.dir, prefix+"*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// op is one entry of the load generator's history, Jepsen style: a submit is
// invoked, then ends ok (acknowledged, with its job id), fail (rejected) or
// info (indeterminate: a timeout or 5xx, so the job may or may not exist).
type op struct {
	Key   string
	Type  string
	JobID int64
}

type history struct {
	mu  sync.Mutex
	ops []op
}

func (h *history) add(o op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, o)
}

// acked maps each acknowledged key to its job id.
func (h *history) acked() map[string]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := map[string]int64{}
	for _, o := range h.ops {
		if o.Type == "ok" {
			m[o.Key] = o.JobID
		}
	}
	return m
}

func (h *history) count(typ string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, o := range h.ops {
		if o.Type == typ {
			n++
		}
	}
	return n
}

// loadOpts shapes a load run.
type loadOpts struct {
	jobs          int
	poisonEvery   int           // every Nth job is poison (0: none)
	crash         bool          // poison jobs kill their worker instead of their handler
	slowEvery     int           // every Nth job is slow (0: none)
	lostResponses bool          // first attempts time out after a few ms, then are retried with the same key
	over          time.Duration // spread the submits over this long, so faults meet a steady stream
	queue         string        // where the jobs go; default a
}

// load submits opts.jobs jobs through the API, each under its own
// Idempotency-Key, retrying indeterminate outcomes until acknowledged.
func (e *env) load(ctx context.Context, h *history, opts loadOpts) {
	const clients = 8
	keys := make(chan int)
	pace := opts.over * clients / time.Duration(max(opts.jobs, 1))
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for n := range keys {
				e.submit(ctx, h, n, opts)
				time.Sleep(pace)
			}
		})
	}
	for n := range opts.jobs {
		keys <- n
	}
	close(keys)
	wg.Wait()
}

func (e *env) submit(ctx context.Context, h *history, n int, opts loadOpts) {
	key := fmt.Sprintf("job-%d", n)
	payload := map[string]any{"n": n}
	if opts.isPoison(n) {
		if opts.crash {
			payload["crash"] = true
		} else {
			payload["poison"] = true
		}
	}
	if opts.slowEvery > 0 && n%opts.slowEvery == opts.slowEvery-1 {
		payload["slow"] = true
	}
	body, _ := json.Marshal(map[string]any{"payload": payload, "group": fmt.Sprintf("tenant-%d", n%5)})
	for attempt := 0; ctx.Err() == nil; attempt++ {
		timeout := 10 * time.Second
		if opts.lostResponses && attempt == 0 {
			timeout = time.Duration(1+rand.IntN(5)) * time.Millisecond
		}
		h.add(op{Key: key, Type: "invoke"})
		id, status, err := post(ctx, e.api+"/v1/queues/"+cmp.Or(opts.queue, "a")+"/jobs", key, body, timeout)
		switch {
		case err == nil && status == 201:
			h.add(op{Key: key, Type: "ok", JobID: id})
			return
		case err == nil && status >= 400 && status < 500 && status != 409:
			h.add(op{Key: key, Type: "fail"})
			e.t.Errorf("submit %s rejected with %d", key, status)
			return
		default: // timeout, connection error, 409 in progress, 5xx: indeterminate
			h.add(op{Key: key, Type: "info"})
			time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
		}
	}
}

var idRE = regexp.MustCompile(`"id":(\d+)`)

func post(ctx context.Context, url, key string, body []byte, timeout time.Duration) (int64, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	var id int64
	if m := idRE.FindSubmatch(b); m != nil {
		_, _ = fmt.Sscan(string(m[1]), &id)
	}
	if resp.StatusCode == 201 && id == 0 {
		return 0, 0, errors.New("201 without an id")
	}
	return id, resp.StatusCode, nil
}

// quiesce waits until no job is waiting or running (twice in a row), or
// the bound passes; it returns how long that took.
func (e *env) quiesce(bound time.Duration) (time.Duration, bool) {
	start := time.Now()
	calm := 0
	for time.Since(start) < bound {
		var busy int
		err := e.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM baton.jobs WHERE state IN ('scheduled', 'available', 'running', 'retrying')").Scan(&busy)
		if err == nil && busy == 0 {
			if calm++; calm == 2 {
				return time.Since(start), true
			}
		} else {
			calm = 0
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start), false
}
