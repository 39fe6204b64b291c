package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/testenv"
)

// syncBuffer collects a process's output while tests read it.
type syncBuffer = testenv.Buffer

// server is a running `baton serve` or `baton dev` process.
type server struct {
	base           string
	cmd            *exec.Cmd
	done           chan struct{} // closed when the process has exited
	stdout, stderr *syncBuffer
}

// startServer runs `baton ARGS` (serve or dev) on a free port and returns it
// once it answers /readyz.
func startServer(t *testing.T, databaseURL string, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(batonBin, append(args, "--addr", "127.0.0.1:0")...)
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+databaseURL), env...)
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	addr := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)|API on http://(127\.0\.0\.1:\d+)`)
	var base string
	require.Eventually(t, func() bool {
		m := addr.FindStringSubmatch(stderr.String() + stdout.String())
		if m == nil {
			return false
		}
		base = "http://" + m[1] + m[2]
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 20*time.Millisecond, "server did not become ready:\n%s", stderr)
	return &server{base: base, cmd: cmd, done: done, stdout: stdout, stderr: stderr}
}

func request(t *testing.T, method, url, token, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode >= 400 {
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), "%s %s: %s", method, url, b)
	}
	return resp.StatusCode, string(b)
}

// TestServeWithTokens is the API's promise end to end, against the real
// binary: good requests do what they say, dozens of bad ones get 4xx
// problems, the job count is exactly what the good ones created, and the
// log holds no panic and no token.
func TestServeWithTokens(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	const tok = "s3cret-token-for-tests"
	srv := startServer(t, u, []string{"BATON_API_TOKENS=other-token-for-tests, " + tok}, "serve")
	base := srv.base

	code, body := request(t, "POST", base+"/v1/queues/resize/jobs", tok, `{"payload": {"image": "cat.png"}}`, "Idempotency-Key", "k1")
	require.Equal(t, 201, code, body)
	id := regexp.MustCompile(`"id":(\d+)`).FindStringSubmatch(body)[1]
	code, again := request(t, "POST", base+"/v1/queues/resize/jobs", tok, `{"payload": {"image": "cat.png"}}`, "Idempotency-Key", "k1")
	require.Equal(t, 201, code)
	require.Contains(t, again, `"id":`+id+`,`)

	var jobs []string
	for i := range 500 {
		jobs = append(jobs, fmt.Sprintf(`{"payload": {"n": %d}}`, i))
	}
	code, body = request(t, "POST", base+"/v1/queues/resize/jobs/batch", tok, `{"jobs": [`+strings.Join(jobs, ",")+`]}`)
	require.Equal(t, 201, code, body)
	code, _ = request(t, "GET", base+"/v1/jobs?queue=resize&limit=100", tok, "")
	require.Equal(t, 200, code)
	code, body = request(t, "POST", base+"/v1/jobs/"+id+"/cancel", tok, "")
	require.Equal(t, 200, code, body)
	code, body = request(t, "GET", base+"/v1/queues", tok, "")
	require.Equal(t, 200, code)
	require.Contains(t, body, `"canceled":1`)

	bad := []struct{ method, path, token, body string }{
		{"POST", "/v1/queues/resize/jobs", "", `{"payload": 1}`},
		{"POST", "/v1/queues/resize/jobs", "wrong", `{"payload": 1}`},
		{"GET", "/v1/queues", "", ""},
		{"POST", "/v1/queues/resize/jobs", tok, `{"payload":`},
		{"POST", "/v1/queues/resize/jobs", tok, `{"payload": 1, "priority": 1e400}`},
		{"POST", "/v1/queues/resize/jobs", tok, `{"payload": 1, "max_attempts": -1}`},
		{"POST", "/v1/queues/resize/jobs", tok, `{"payload": "\u0000"}`},
		{"POST", "/v1/queues/resize/jobs", tok, `{"payload": 1}{"payload": 2}`},
		{"POST", "/v1/queues/resize/jobs", tok, `{"payload": 1, "delay": "yesterday"}`},
		{"POST", "/v1/queues/RESIZE/jobs", tok, `{"payload": 1}`},
		{"POST", "/v1/queues/resize/jobs", tok, `{"payload": "` + strings.Repeat("x", 2<<20) + `"}`},
		{"POST", "/v1/queues/resize/jobs/batch", tok, `{"jobs": [{"payload": 1}, {"payload": 1, "run_at": "tomorrow"}]}`},
		{"GET", "/v1/jobs/-1", tok, ""},
		{"GET", "/v1/jobs?limit=0", tok, ""},
		{"DELETE", "/v1/jobs/1", tok, ""},
	}
	for _, b := range bad {
		code, body := request(t, b.method, base+b.path, b.token, b.body)
		require.True(t, code >= 400 && code < 500, "%s %s -> %d %s", b.method, b.path, code, body)
	}
	require.Equal(t, 501, count(t, pool, "SELECT count(*) FROM baton.jobs"))

	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-srv.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	require.Equal(t, 0, srv.cmd.ProcessState.ExitCode(), srv.stderr.String())
	out := srv.stderr.String()
	require.NotContains(t, out, "panic")
	require.NotContains(t, out, tok)
	require.NotContains(t, out, "cat.png", "payloads stay out of the log")
	require.Contains(t, out, "status=401")
}

func TestServeRefusesUnauthenticatedNonLoopback(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	r := baton(t, u, "", "serve", "--addr", "0.0.0.0:0")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "refusing to serve 0.0.0.0:0 without authentication")
}

// A token short enough to guess is refused at start-up, in one line that
// does not print it.
func TestServeRefusesShortTokens(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	for _, cmd := range [][]string{{"serve"}, {"dev", "--config", writeFile(t, "p.yaml", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n")}} {
		c := exec.Command(batonBin, cmd...)
		c.Env = append(os.Environ(), "DATABASE_URL="+u, "BATON_API_TOKENS=a-long-enough-token-1, short-2")
		out, err := c.CombinedOutput()
		require.Error(t, err)
		require.Equal(t, 2, c.ProcessState.ExitCode(), "%s", out)
		require.Equal(t, "baton: BATON_API_TOKENS: token 2 of 2 is 7 characters; each must be at least 16 (make one with: openssl rand -hex 32)\n", string(out))
	}
}

func TestDevRunsAPIAndWorker(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	config := writeFile(t, "p.yaml", "poll_interval: 50ms\nstages:\n  - queue: a\n    handler: {exec: [cat]}\n    next: b\n  - queue: b\n    handler: {exec: [cat]}\n")
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	srv := startServer(t, u, nil, "dev", "--config", config)
	// Run the curl the quick start prints, as a user would paste it.
	var curl string
	sc := bufio.NewScanner(strings.NewReader(srv.stdout.String()))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "curl -sS -X POST") {
			curl = line
		}
	}
	require.NotEmpty(t, curl, srv.stdout.String())
	out, err := exec.Command("sh", "-c", curl).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), `"queue":"a"`)
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'") == 2
	}, 30*time.Second, 20*time.Millisecond)
}

// baton queue lists the queues, pauses and resumes one, and sets how long it
// keeps its finished jobs.
func TestQueueCommands(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	_, err := store.Submit(context.Background(), pool, store.NewJob{Queue: "mail"})
	require.NoError(t, err)
	r := baton(t, u, "", "queue", "set", "mail", "--retain-succeeded", "48h", "--retain-dead", "forever")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "queue mail keeps succeeded jobs 48h0m0s, dead jobs forever, canceled jobs (default); global concurrency (its stages' own); max backlog none; rate limit (its stages' own)\n", r.stdout)
	r = baton(t, u, "", "queue", "set", "mail", "--retain-dead", "default", "--global-concurrency", "5")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "queue mail keeps succeeded jobs 48h0m0s, dead jobs (default), canceled jobs (default); global concurrency 5; max backlog none; rate limit (its stages' own)\n", r.stdout)
	for _, bad := range []string{"0", "-1", "many", "1000001"} {
		r = baton(t, u, "", "queue", "set", "mail", "--global-concurrency", bad)
		require.Equal(t, 2, r.code, bad)
		require.Contains(t, r.stderr, "--global-concurrency", bad)
	}
	r = baton(t, u, "", "queue", "set", "mail", "--global-concurrency", "default")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "global concurrency (its stages' own)")
	r = baton(t, u, "", "queue", "set", "mail", "--rate-limit", "600/m")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "rate limit 600/m")
	for _, bad := range []string{"20/fortnight", "0/s", "-5/s", "20"} {
		r = baton(t, u, "", "queue", "set", "mail", "--rate-limit", bad)
		require.Equal(t, 2, r.code, bad)
		require.Contains(t, r.stderr, "--rate-limit", bad)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	}
	r = baton(t, u, "", "queue", "weight", "mail", "customer-42", "3")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "group customer-42 of queue mail has weight 3 in fair shares\n", r.stdout)
	for _, bad := range [][]string{{"customer-42", "-3"}, {"customer-42", "0"}, {"customer-42", "1001"}, {"", "2"}} {
		r = baton(t, u, "", "queue", "weight", "mail", bad[0], bad[1])
		require.Equal(t, 2, r.code, bad)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	}
	require.Equal(t, 3, count(t, pool, "SELECT weight FROM baton.queue_groups WHERE queue = 'mail' AND group_key = 'customer-42'"), "a refused weight changes nothing")
	r = baton(t, u, "", "queue", "pause", "mail")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "queue mail is paused\n", r.stdout)
	r = baton(t, u, "", "queue", "list")
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `(?m)^QUEUE\s+STATE\s+WAITING\s+RUNNING\s+SUCCEEDED\s+DEAD\s+CANCELED\s+KEEP SUCCEEDED\s+KEEP DEAD\s+KEEP CANCELED\n`+
		`mail\s+paused\s+1\s+0\s+0\s+0\s+0\s+48h0m0s\s+\(default\)\s+\(default\)\n$`, r.stdout)
	r = baton(t, u, "", "queue", "list", "--format", "json")
	require.Zero(t, r.code, r.stderr)
	var queues []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &queues))
	require.Len(t, queues, 1)
	require.Equal(t, "mail", queues[0]["queue"])
	require.Equal(t, true, queues[0]["paused"])
	require.EqualValues(t, 1, queues[0]["depth"])
	require.Equal(t, "48h0m0s", queues[0]["retention"].(map[string]any)["succeeded"])
	r = baton(t, u, "", "queue", "list", "--format", "xml")
	require.Equal(t, 2, r.code)
	r = baton(t, u, "", "queue", "resume", "mail")
	require.Equal(t, "queue mail is active\n", r.stdout)

	// An unknown queue is refused, and not made, unless --create says so.
	for _, verb := range []string{"pause", "resume"} {
		r = baton(t, u, "", "queue", verb, "nosuch")
		require.Equal(t, 1, r.code, r.stderr)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
		require.Contains(t, r.stderr, `queue "nosuch" not found`)
	}
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.queues WHERE name = 'nosuch'"))
	r = baton(t, u, "", "queue", "pause", "later", "--create")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "queue later is paused\n", r.stdout)
}

// serve prunes finished jobs by its --retain-* settings (here from the
// environment), from its first maintenance round on.
func TestServePrunesByItsRetention(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	ids, err := store.Submit(context.Background(), pool, store.NewJob{Queue: "a"}, store.NewJob{Queue: "a"})
	require.NoError(t, err)
	_, err = pool.Exec(context.Background(), `UPDATE baton.jobs SET state = 'succeeded', finished_at = now() - interval '2 minutes' WHERE id = $1`, ids[0])
	require.NoError(t, err)
	startServer(t, u, []string{"BATON_RETAIN_SUCCEEDED=1m"}, "serve")
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs") == 1
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1", ids[1]), "the waiting job stays")
}

// --metrics-queues (env BATON_METRICS_QUEUES) bounds the queues /metrics
// names; anything but a whole number in range is refused in one line.
func TestServeMetricsQueues(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	srv := startServer(t, u, []string{"BATON_METRICS_QUEUES=1"}, "serve")
	for _, q := range []string{"big", "big", "small"} {
		code, body := request(t, "POST", srv.base+"/v1/queues/"+q+"/jobs", "", `{"payload": 1}`)
		require.Equal(t, http.StatusCreated, code, body)
	}
	_, metrics := request(t, "GET", srv.base+"/metrics", "", "")
	require.Contains(t, metrics, `baton_jobs{queue="big",state="available"} 2`)
	require.Contains(t, metrics, `baton_jobs{queue="_other",state="available"} 1`)
	require.NotContains(t, metrics, `queue="small"`)

	for _, bad := range []string{"0", "many", "10001"} {
		r := baton(t, u, "", "serve", "--addr", "127.0.0.1:0", "--metrics-queues", bad)
		require.Equal(t, 2, r.code, r.stderr)
		require.Equal(t, "baton: --metrics-queues \""+bad+"\": want a whole number from 1 to 10000\n", r.stderr)
	}
}
