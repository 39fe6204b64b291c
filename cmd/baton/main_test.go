package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/migrations"
	"github.com/baton-run/baton/worker"
)

// batonBin is the binary under test, built once by TestMain.
var batonBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "baton-bin")
	if err != nil {
		panic(err)
	}
	batonBin = filepath.Join(dir, "baton")
	if out, err := exec.Command("go", "build", "-o", batonBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building baton: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// baton runs the binary against databaseURL, with stdin if given.
func baton(t *testing.T, databaseURL, stdin string, args ...string) result {
	t.Helper()
	return batonWith(t, databaseURL, nil, stdin, args...)
}

// batonWith is baton with more environment.
func batonWith(t *testing.T, databaseURL string, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, batonBin, args...)
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+databaseURL), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("running baton %v: %v", args, err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// workerProc is a `baton worker` process.
type workerProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

func startWorker(t *testing.T, databaseURL, config, id string, env ...string) *workerProc {
	t.Helper()
	cmd := exec.Command(batonBin, "worker", "--config", config, "--id", id)
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+databaseURL), env...)
	return startProc(t, cmd)
}

// startProc starts cmd, collecting its stderr, and kills it when the test
// ends if it is still running.
func startProc(t *testing.T, cmd *exec.Cmd) *workerProc {
	t.Helper()
	w := &workerProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = w.stderr
	require.NoError(t, cmd.Start())
	go func() { w.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-w.done
		}
	})
	return w
}

// wait waits for the process to exit and returns its exit code.
func (w *workerProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-w.done:
		return w.cmd.ProcessState.ExitCode()
	case <-time.After(time.Minute):
		t.Fatalf("worker did not exit; stderr:\n%s", w.stderr)
		return -1
	}
}

func TestBadInputExitsTwoAndChangesNothing(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	badPipeline := writeFile(t, "bad.yaml", "stages:\n  - queue: a\n    handler: {grpc: x}\n")
	const cat = "stages:\n  - queue: a\n    handler: {exec: [cat]}\n"
	cycle := writeFile(t, "cycle.yaml", cat+"    next: b\n  - queue: b\n    handler: {exec: [cat]}\n    next: a\n")
	busyPoll := writeFile(t, "poll.yaml", "poll_interval: 1ns\n"+cat)
	twoDocs := writeFile(t, "two.yaml", cat+"---\n"+cat)
	unknownField := writeFile(t, "unknown.yaml", cat+"    leese: 3s\n")
	catPipeline := writeFile(t, "cat.yaml", cat)
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"UnknownCommand", []string{"frobnicate"}, "", `unknown command "frobnicate"`},
		{"SubmitNoQueue", []string{"submit"}, "", "usage: baton submit"},
		{"SubmitBadQueueName", []string{"submit", "Bad Queue", "{}"}, "", `queue "Bad Queue"`},
		{"SubmitInjectionQueue", []string{"submit", "a';DROP TABLE baton.jobs;--", "{}"}, "", "queue name must be"},
		{"SubmitMalformedJSON", []string{"submit", "a", `{"x":`}, "", "not valid JSON"},
		{"SubmitMalformedStdin", []string{"submit", "a", "-"}, "{nope", "not valid JSON"},
		{"SubmitNulInPayload", []string{"submit", "a", `{"x":"\u0000"}`}, "", "invalid input"},
		{"SubmitPriorityRange", []string{"submit", "a", "{}", "--priority", "500"}, "", "--priority 500"},
		{"SubmitBadDelay", []string{"submit", "a", "{}", "--delay", "soon"}, "", "invalid value \"soon\""},
		{"SubmitNegativeDelay", []string{"submit", "a", "{}", "--delay", "-3s"}, "", "--delay -3s"},
		{"SubmitMaxAttempts", []string{"submit", "a", "--max-attempts", "0x"}, "", "max-attempts"},
		{"SubmitUnknownFlag", []string{"submit", "a", "--prio", "1"}, "", "flag provided but not defined: -prio"},
		{"StatusNotANumber", []string{"status", "abc"}, "", "positive integer"},
		{"StatusPlusSign", []string{"status", "+5"}, "", "plain decimal"},
		{"CancelLeadingZero", []string{"cancel", "007"}, "", "plain decimal"},
		{"RetryOverflow", []string{"retry", "9223372036854775808"}, "", "plain decimal"},
		{"CancelNoID", []string{"cancel"}, "", "usage: baton cancel ID"},
		{"RetryTooMany", []string{"retry", "1", "2"}, "", "usage: baton retry ID"},
		{"WorkerNoConfig", []string{"worker"}, "", "--config FILE"},
		{"WorkerUnreadableConfig", []string{"worker", "--config", "/nonexistent.yaml"}, "", "/nonexistent.yaml"},
		{"WorkerUnknownHandlerKind", []string{"worker", "--config", badPipeline}, "", `unknown handler kind "grpc"`},
		{"WorkerPipelineCycle", []string{"worker", "--config", cycle}, "", "stage 1 (a): next: a -> b -> a is a cycle"},
		{"WorkerPollIntervalBelowFloor", []string{"worker", "--config", busyPoll}, "", "poll_interval 1ns is below its floor of 10ms"},
		{"WorkerSecondYAMLDocument", []string{"worker", "--config", twoDocs}, "", "second YAML document"},
		{"WorkerUnknownStageField", []string{"worker", "--config", unknownField}, "", `stage 1 (a): unknown field "leese"`},
		{"DevPipelineCycle", []string{"dev", "--config", cycle}, "", "is a cycle"},
		{"MigrateSideways", []string{"migrate", "sideways"}, "", "usage: baton migrate up | down N | down --all | force N | version"},
		{"MigrateDownBadN", []string{"migrate", "down", "x"}, "", "positive number"},
		{"MigrateDownWithoutN", []string{"migrate", "down"}, "", "say how many migrations to undo (down N), or --all"},
		{"MigrateDownNAndAll", []string{"migrate", "down", "2", "--all"}, "", "usage: baton migrate"},
		{"MigrateForceWithoutN", []string{"migrate", "force"}, "", "usage: baton migrate"},
		{"MigrateForceBadN", []string{"migrate", "force", "x3"}, "", "positive number"},
		{"VersionArgument", []string{"version", "now"}, "", "usage: baton version"},
		{"ReportUnknown", []string{"report", "nope"}, "", `unknown report "nope"`},
		{"ReportTwoNames", []string{"report", "failures", "stuck_jobs"}, "", "one report NAME at most"},
		{"ReportBadFormat", []string{"report", "--format", "xml"}, "", "--format must be table, json or csv"},
		{"ReportCSVNeedsName", []string{"report", "--format", "csv"}, "", "csv prints one report"},
		{"ReportBadSince", []string{"report", "--since", "yesterday"}, "", "--since must be"},
		{"ReportNegativeSince", []string{"report", "--since", "-1h"}, "", "--since must be"},
		{"ReportSinceYear10000InUTC", []string{"report", "--since", "9999-12-31T23:59:59-01:00"}, "", "is 10000-01-01T00:59:59Z in UTC"},
		{"ReportBadQueue", []string{"report", "--queue", "Bad Q"}, "", "--queue"},
		{"QueueNoSubcommand", []string{"queue"}, "", "usage: baton queue list"},
		{"QueueUnknownSubcommand", []string{"queue", "drain", "a"}, "", "usage: baton queue list"},
		{"QueueSetNothing", []string{"queue", "set", "a"}, "", "nothing to set"},
		{"QueueSetBadRetention", []string{"queue", "set", "a", "--retain-dead", "soon"}, "", `--retain-dead "soon"`},
		{"QueueSetZeroRetention", []string{"queue", "set", "a", "--retain-succeeded", "0s"}, "", `--retain-succeeded "0s"`},
		{"QueueSetSubSecondRetention", []string{"queue", "set", "a", "--retain-dead", "999us"}, "", `--retain-dead "999us"`},
		{"WorkerNanosecondRetention", []string{"worker", "--config", catPipeline, "--retain-succeeded", "1ns"}, "", `--retain-succeeded: `},
		{"QueuePauseBadName", []string{"queue", "pause", "Bad Q"}, "", "queue name must be"},
		{"ServeBadRetention", []string{"serve", "--retain-succeeded", "soon"}, "", `--retain-succeeded: `},
		{"WorkerBadRetention", []string{"worker", "--config", catPipeline, "--retain-canceled", "-1h"}, "", `--retain-canceled: `},
		{"ServeReaderLimitTooShort", []string{"serve", "--reader-idle-limit", "500ms"}, "", `--reader-idle-limit "500ms": want a duration of at least 1s`},
		{"WorkerBadReaderLimit", []string{"worker", "--config", catPipeline, "--reader-transaction-limit", "soon"}, "", `--reader-transaction-limit "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baton(t, u, tt.stdin, tt.args...)
			require.Equal(t, 2, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, tt.want)
			require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %q", r.stderr)
			require.Empty(t, r.stdout)
		})
	}
	// Settings from the environment are checked as strictly as flags.
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"UnknownLogLevel", []string{"BATON_LOG_LEVEL=loud"}, []string{"status", "1"}, `BATON_LOG_LEVEL="loud": want debug, info, warn or error`},
		{"UnknownLogFormat", []string{"BATON_LOG_FORMAT=xml"}, []string{"submit", "a", "{}"}, `BATON_LOG_FORMAT="xml": want text or json`},
		{"BadPollOnly", []string{"BATON_POLL_ONLY=sometimes"}, []string{"worker", "--config", catPipeline}, `BATON_POLL_ONLY="sometimes"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := batonWith(t, u, tt.env, "", tt.args...)
			require.Equal(t, 2, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, tt.want)
			require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %q", r.stderr)
		})
	}
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.jobs"))
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.queues"))
}

func TestSubmitStatusCancelRetry(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	r := baton(t, u, "", "submit", "emails", `{"to":"ada@example.com"}`, "--priority", "3", "--max-attempts", "2", "--delay", "1h")
	require.Zero(t, r.code, r.stderr)
	id := strings.TrimSpace(r.stdout)

	r = baton(t, u, "", "status", id)
	require.Zero(t, r.code, r.stderr)
	for _, want := range []string{`"state": "scheduled"`, `"queue": "emails"`, `"priority": 3`, `"max_attempts": 2`, `"to": "ada@example.com"`, `"history"`, `"children": []`} {
		require.Contains(t, r.stdout, want)
	}

	r = baton(t, u, `{"order": 7}`, "submit", "emails", "-", "--key", "order-7")
	require.Zero(t, r.code, r.stderr)
	again := baton(t, u, `{"order": 7}`, "submit", "emails", "-", "--key", "order-7")
	require.Equal(t, r.stdout, again.stdout, "the same key returns the same job")

	r = baton(t, u, "", "cancel", id)
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("job %s is canceled\n", id), r.stdout)
	r = baton(t, u, "", "cancel", id)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "only unfinished jobs can be canceled")

	r = baton(t, u, "", "retry", id)
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("job %s is available\n", id), r.stdout)

	r = baton(t, u, "", "status", "999999")
	require.Equal(t, 1, r.code)
	require.Equal(t, "baton: job 999999 not found\n", r.stderr)
	r = baton(t, u, "", "cancel", "999999")
	require.Equal(t, "baton: job 999999 not found\n", r.stderr)
	require.Equal(t, 2, count(t, pool, "SELECT count(*) FROM baton.jobs"))
}

// Not parallel: it sets the environment the binary inherits.
// A job whose times were set by hand beyond what RFC 3339 writes (here
// ±infinity and the year 12000) still prints: before, baton status failed
// with "Time.MarshalJSON: year outside of range".
func TestStatusPrintsTimesStoredByHand(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	r := baton(t, u, "", "submit", "a", `{"n": 1}`)
	require.Zero(t, r.code, r.stderr)
	id := strings.TrimSpace(r.stdout)
	_, err := pool.Exec(context.Background(),
		"UPDATE baton.jobs SET run_at = 'infinity', created_at = '12000-01-01', started_at = '-infinity' WHERE id = $1", id)
	require.NoError(t, err)
	r = baton(t, u, "", "status", id)
	require.Zero(t, r.code, r.stderr)
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	require.Equal(t, "9999-12-31T23:59:59.999999Z", st["run_at"])
	require.Equal(t, "9999-12-31T23:59:59.999999Z", st["created_at"])
	require.Equal(t, "0000-01-01T00:00:00Z", st["started_at"])
}

func TestSubmitJoinsTheCallersTrace(t *testing.T) {
	pool, u := dbtest.NewWithURL(t)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	t.Setenv("TRACEPARENT", parent)
	r := baton(t, u, "", "submit", "traced", "{}")
	require.Zero(t, r.code, r.stderr)
	var got string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT trace_parent FROM baton.jobs WHERE id = $1",
		strings.TrimSpace(r.stdout)).Scan(&got))
	require.Equal(t, parent, got)

	t.Setenv("TRACEPARENT", "garbage")
	r = baton(t, u, "", "submit", "traced", "{}")
	require.Zero(t, r.code, r.stderr, "a malformed TRACEPARENT is ignored, not an error")
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	// The name keeps dbtest's baton_t_<unix>_ prefix, so that no other test
	// binary takes it for a stale database and drops it while it is in use.
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	parsed.Path += "_fresh"
	fresh := parsed.String()
	t.Cleanup(func() { dropDatabase(t, u, fresh) })
	r := baton(t, fresh, "", "migrate", "version")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "version: none\n", r.stdout, "the database is created if missing")
	r = baton(t, fresh, "", "migrate", "up")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("version: %d\n", latestMigration(t)), r.stdout)
	latest := latestMigration(t)
	r = baton(t, fresh, "", "migrate", "down", "1")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("version: %d\n", latest-1), r.stdout)

	// A migration that failed half-way leaves the version dirty; once it is
	// finished (or undone) by hand, force says where the schema is.
	r = baton(t, fresh, "", "migrate", "up")
	require.Zero(t, r.code, r.stderr)
	conn, err := pgx.Connect(context.Background(), fresh)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), "UPDATE baton_schema_migrations SET dirty = true")
	require.NoError(t, err)
	conn.Close(context.Background())
	r = baton(t, fresh, "", "migrate", "version")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, fmt.Sprintf("version: %d (dirty: migration %d failed half-way", latest, latest))
	require.Contains(t, r.stdout, "baton migrate force N")
	r = baton(t, fresh, "", "migrate", "force", strconv.Itoa(latest))
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("version: %d\n", latest), r.stdout)

	// Past what is applied, and to a version the binary does not have:
	// refused in one line, nothing changed. Before, down 100 undid every
	// migration (the schema and every job) and then exited 1; force 999
	// exited 0 and broke up and down.
	for _, args := range [][]string{{"down", "100"}, {"down", strconv.Itoa(latest + 1)}, {"force", "999"}, {"force", strconv.Itoa(latest + 1)}} {
		r = baton(t, fresh, "", append([]string{"migrate"}, args...)...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), "%v: one line: %s", args, r.stderr)
		r = baton(t, fresh, "", "migrate", "version")
		require.Equal(t, fmt.Sprintf("version: %d\n", latest), r.stdout, "%v changed the schema", args)
	}
	require.Contains(t, baton(t, fresh, "", "migrate", "down", "100").stderr, fmt.Sprintf("only %d migrations are applied; nothing was undone", latest))
	r = baton(t, fresh, "", "migrate", "down", strconv.Itoa(latest))
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "version: none\n", r.stdout, "down N with every migration applied")
	require.Equal(t, 2, baton(t, fresh, "", "migrate", "down", "1").code, "nothing applied")
	r = baton(t, fresh, "", "migrate", "up")
	require.Zero(t, r.code, r.stderr)

	r = baton(t, fresh, "", "migrate", "down", "--all")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "version: none\n", r.stdout)
}

// Every command answers -h and --help with its usage (and flags) on
// standard output, and exit status 0.
func TestEveryCommandAnswersHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"migrate"}, {"worker"}, {"serve"}, {"dev"}, {"submit"}, {"status"}, {"cancel"}, {"retry"},
		{"report"}, {"queue"}, {"queue", "set"}, {"queue", "list"}, {"bench"}, {"version"},
	} {
		for _, help := range []string{"-h", "--help"} {
			r := baton(t, "postgres://postgres@127.0.0.1:1/nowhere", "", append(args, help)...)
			require.Zero(t, r.code, "%v %s: %s", args, help, r.stderr)
			require.Contains(t, r.stdout, "usage: baton "+args[0], "%v %s", args, help)
			require.Empty(t, r.stderr)
		}
	}
	// baton help CMD is CMD --help; help of no command or two is refused.
	for _, cmd := range []string{"submit", "queue", "migrate", "serve"} {
		r := baton(t, "", "", "help", cmd)
		require.Zero(t, r.code, r.stderr)
		require.Equal(t, baton(t, "", "", cmd, "--help").stdout, r.stdout)
	}
	for _, args := range [][]string{{"help", "nosuch"}, {"help", "submit", "queue"}} {
		r := baton(t, "", "", args...)
		require.Equal(t, 2, r.code, "%v", args)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	}
	r := baton(t, "", "", "worker", "--help")
	require.Contains(t, r.stdout, "-config string")
	require.Contains(t, r.stdout, "env BATON_CONFIG")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := baton(t, "", "", "version")
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `^baton \S+ \(commit \S+.*\) go1\.\d+`, r.stdout)
	require.Equal(t, r, baton(t, "", "", "--version"))
}

// A worker takes its settings from the environment too: BATON_CONFIG,
// BATON_WORKER_ID (in leases and history), and serves its probes beside
// its metrics.
func TestWorkerSettingsFromTheEnvironmentAndItsProbes(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	catPipeline := writeFile(t, "cat.yaml", "poll_interval: 50ms\nstages:\n  - queue: a\n    handler: {exec: [cat]}\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(batonBin, "worker")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+u, "BATON_CONFIG="+catPipeline, "BATON_WORKER_ID=from-env", "BATON_METRICS_ADDR="+addr)
	w := startProc(t, cmd)
	require.Eventually(t, func() bool { code, _ := probe(addr, "/readyz"); return code == http.StatusOK }, 20*time.Second, 10*time.Millisecond, w.stderr.String())
	code, _ := probe(addr, "/healthz")
	require.Equal(t, http.StatusOK, code)
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, resp.Header.Get("Content-Type"), "application/openmetrics-text")
	require.Zero(t, baton(t, u, "", "submit", "a", "{}").code)
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.job_history WHERE to_state = 'succeeded' AND worker = 'from-env'") == 1
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.Zero(t, w.wait(t), w.stderr.String())
}

// latestMigration is the highest version among the embedded migrations.
func latestMigration(t *testing.T) int {
	names, err := fs.Glob(migrations.FS, "*.up.sql")
	require.NoError(t, err)
	latest := 0
	for _, n := range names {
		v, err := strconv.Atoi(n[:strings.Index(n, "_")])
		require.NoError(t, err)
		latest = max(latest, v)
	}
	return latest
}

func dropDatabase(t *testing.T, anyURL, target string) {
	pool, err := pgxpool.New(context.Background(), anyURL)
	if err != nil {
		return
	}
	defer pool.Close()
	name := target[strings.LastIndex(target, "/")+1:]
	name, _, _ = strings.Cut(name, "?")
	_, _ = pool.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

func TestDelayedJobDoesNotStartEarly(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	config := writeFile(t, "p.yaml", "poll_interval: 50ms\nstages:\n  - queue: a\n    handler: {exec: [cat]}\n")
	startWorker(t, u, config, "w")
	r := baton(t, u, "", "submit", "a", "{}", "--delay", "1500ms")
	require.Zero(t, r.code, r.stderr)
	id := strings.TrimSpace(r.stdout)
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1 AND state = 'succeeded'", id) == 1
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM baton.jobs
		WHERE id = $1 AND run_at - created_at = interval '1.5 s' AND started_at >= run_at`, id))
}

func TestSIGTERMDrainsTheWorker(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	// The handlers run until the test lets them go (after the SIGTERM): a
	// fixed sleep let the first finish before the last started, on a
	// loaded machine.
	release := filepath.Join(t.TempDir(), "release")
	config := writeFile(t, "p.yaml", fmt.Sprintf(`
poll_interval: 50ms
shutdown_grace: 1m
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "while [ ! -e %s ]; do sleep 0.02; done; cat"]}
    concurrency: 4
`, release))
	w := startWorker(t, u, config, "w")
	for range 4 {
		require.Zero(t, baton(t, u, "", "submit", "a", "{}").code)
	}
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'running'") == 4
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, os.WriteFile(release, nil, 0o644))
	require.Equal(t, 0, w.wait(t), w.stderr.String())
	require.Equal(t, 4, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'"))
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'running'"))
}

func TestReportPrintsEveryView(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	config := writeFile(t, "p.yaml", `
poll_interval: 50ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "p=$(cat); case $p in *fail*) echo boom >&2; exit 3;; esac; echo $p"]}
    next: b
    max_attempts: 1
  - queue: b
    handler: {exec: ["cat"]}
`)
	for _, p := range []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"fail":true}`} {
		r := baton(t, u, "", "submit", "a", p)
		require.Zero(t, r.code, r.stderr)
	}
	startWorker(t, u, config, "reporter")
	type summary struct {
		Queue           string
		Succeeded, Dead int
	}
	require.Eventually(t, func() bool {
		r := baton(t, u, "", "report", "queue_summary", "--format", "json")
		require.Zero(t, r.code, r.stderr)
		var rows []summary
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows))
		return slices.Equal(rows, []summary{{"a", 3, 1}, {"b", 3, 0}})
	}, 30*time.Second, 50*time.Millisecond)

	r := baton(t, u, "", "report")
	require.Zero(t, r.code, r.stderr)
	for _, name := range []string{"queue_summary", "backlog_by_priority", "stage_latency", "throughput_hourly", "stage_errors", "failures",
		"attempts_per_job", "stuck_jobs", "pipeline_lineage", "slowest_journeys", "worker_activity", "table_health", "periodic", "groups"} {
		require.Regexp(t, "(?m)^"+name+"$", r.stdout)
	}
	require.Regexp(t, `(?m)^a +0 +0 +0 +0 +3 +1 +0 +0\.000 +false$`, r.stdout)
	require.Regexp(t, `(?m)^a +exit status 3: boom +1 +1 +1 `, r.stdout, "failures groups by error text")

	r = baton(t, u, "", "report", "--format", "json", "--since", "1h")
	require.Zero(t, r.code, r.stderr)
	var all map[string][]map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &all))
	require.Len(t, all, 14)
	require.Len(t, all["pipeline_lineage"], 4+3)
	require.Len(t, all["slowest_journeys"], 4, "three journeys to b's end, one dead at a")
	topErrors, err := json.Marshal(all["stage_errors"][0]["top_errors"]) // a's: errors first
	require.NoError(t, err)
	require.JSONEq(t, `[{"error": "exit status 3: boom", "attempts": 1}]`, string(topErrors), "top_errors is JSON in JSON")
	require.Empty(t, all["stuck_jobs"])
	require.Contains(t, r.stdout, `"stuck_jobs": []`, "no rows print as [], not null")
	sizes := map[string]float64{}
	for _, row := range all["table_health"] {
		sizes[row["table_name"].(string)] = row["table_bytes"].(float64) + row["index_bytes"].(float64)
		require.Contains(t, row, "dead_rows")
		require.Contains(t, row, "last_vacuum")
	}
	require.Positive(t, sizes["jobs"], "the jobs table and its indexes take room: %v", sizes)
	require.Positive(t, sizes["job_events"])
	require.Contains(t, sizes, "queues")

	r = baton(t, u, "", "report", "failures", "--format", "csv")
	require.Zero(t, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2)
	require.Equal(t, "queue,error,attempts,jobs,deaths,first_seen,last_seen,last_job_id", lines[0])
	require.True(t, strings.HasPrefix(lines[1], "a,exit status 3: boom,1,1,1,"), lines[1])

	r = baton(t, u, "", "report", "pipeline_lineage", "--queue", "b", "--format", "json")
	require.Zero(t, r.code, r.stderr)
	var hops []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &hops))
	require.Len(t, hops, 3*2, "the three journeys that reached b, both hops each")

	r = baton(t, u, "", "report", "stage_latency", "--since", "2000-01-01T00:00:00Z")
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `(?m)^b +3 `, r.stdout)

	// Reports read where --database-url or BATON_REPORTS_DATABASE_URL say (a
	// standby: the chaos suite's failover scenario reads one), not DATABASE_URL.
	nowhere := "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"
	r = baton(t, nowhere, "", "report", "queue_summary", "--database-url", u)
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `(?m)^a +0 +0 +0 +0 +3 +1 `, r.stdout)
	r = batonWith(t, nowhere, []string{"BATON_REPORTS_DATABASE_URL=" + u}, "", "report", "queue_summary")
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `(?m)^a +0 +0 +0 +0 +3 +1 `, r.stdout)
	r = batonWith(t, u, []string{"BATON_REPORTS_DATABASE_URL=" + nowhere}, "", "report", "queue_summary", "--database-url", u)
	require.Zero(t, r.code, r.stderr, "the flag wins over the environment")
}

// TestReplicasSurviveSIGKILL is the core promise end to end: two worker
// processes move 300 jobs through two stages while one is killed with
// SIGKILL mid-run and restarted; every job is done exactly once.
func TestReplicasSurviveSIGKILL(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	config := writeFile(t, "p.yaml", `
poll_interval: 50ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "sleep 0.02; cat"]}
    next: b
    lease: 10s
    concurrency: 4
  - queue: b
    handler: {exec: ["cat"]}
    lease: 10s
    concurrency: 4
`)
	for i := range 300 {
		r := baton(t, u, "", "submit", "a", fmt.Sprintf(`{"n": %d}`, i))
		require.Zero(t, r.code, r.stderr)
	}
	victim := startWorker(t, u, config, "victim")
	startWorker(t, u, config, "survivor")

	// Kill the victim while it holds leases.
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE leased_by = 'victim' AND state = 'running'") > 0 &&
			count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'a' AND state = 'succeeded'") >= 30
	}, 60*time.Second, 5*time.Millisecond)
	require.NoError(t, victim.cmd.Process.Kill())
	victim.wait(t)
	// A statement the victim sent just before dying still runs (and may claim
	// jobs) until its backend notices; wait for the backends to go.
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'baton-worker victim'") == 0
	}, 30*time.Second, 10*time.Millisecond)
	orphans := count(t, pool, "SELECT count(*) FROM baton.jobs WHERE leased_by = 'victim' AND state = 'running'")
	require.Positive(t, orphans)
	// Expire the orphans' leases instead of waiting 10s, and restart the replica.
	_, err := pool.Exec(context.Background(), "UPDATE baton.jobs SET lease_expires_at = now() - interval '1s' WHERE leased_by = 'victim' AND state = 'running'")
	require.NoError(t, err)
	startWorker(t, u, config, "victim")

	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'") == 600
	}, 2*time.Minute, 20*time.Millisecond)
	var a, b [7]int
	row := "SELECT scheduled, available, running, retrying, succeeded, dead, canceled FROM baton.queue_summary WHERE queue = $1"
	require.NoError(t, pool.QueryRow(context.Background(), row, "a").Scan(&a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6]))
	require.NoError(t, pool.QueryRow(context.Background(), row, "b").Scan(&b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &b[6]))
	require.Equal(t, [7]int{0, 0, 0, 0, 300, 0, 0}, a)
	require.Equal(t, [7]int{0, 0, 0, 0, 300, 0, 0}, b)
	require.Equal(t, 300, count(t, pool, "SELECT count(DISTINCT parent_id) FROM baton.jobs WHERE queue = 'b'"))
	require.Equal(t, 600, count(t, pool, "SELECT count(*) FROM baton.job_history WHERE to_state = 'succeeded'"),
		"each job succeeded exactly once")
	if reaped := count(t, pool, "SELECT count(*) FROM baton.job_events WHERE error LIKE 'lease expired%'"); reaped != orphans {
		rows, _ := pool.Query(context.Background(), `SELECT e.job_id, e.at, e.from_state, e.to_state, e.attempt, e.lease_token, e.worker, e.error
			FROM baton.job_history e WHERE e.job_id IN (SELECT job_id FROM baton.job_events WHERE error LIKE 'lease expired%') ORDER BY e.job_id, e.seq`)
		for rows.Next() {
			v, _ := rows.Values()
			t.Log(v...)
		}
		rows.Close()
		t.Fatalf("%d jobs reaped, %d orphaned by the kill", reaped, orphans)
	}
}

func TestDeadJobIsReDrivenByRetry(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	fixed := filepath.Join(t.TempDir(), "fixed")
	// Fails with a message on stderr until the file exists.
	config := writeFile(t, "p.yaml", fmt.Sprintf(`
poll_interval: 50ms
stages:
  - queue: a
    handler: {exec: ["sh", "-c", "test -e %s || { echo 'upstream down' >&2; exit 1; }; cat"]}
    max_attempts: 2
    backoff: 10ms
    max_backoff: 20ms
`, fixed))
	startWorker(t, u, config, "w")
	id := strings.TrimSpace(baton(t, u, "", "submit", "a", `{"v": 1}`).stdout)
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1 AND state = 'dead'", id) == 1
	}, 30*time.Second, 20*time.Millisecond)
	r := baton(t, u, "", "status", id)
	require.Contains(t, r.stdout, `"last_error": "exit status 1: upstream down"`)
	require.Contains(t, r.stdout, `"attempts": 2`)

	require.NoError(t, os.WriteFile(fixed, nil, 0o600))
	r = baton(t, u, "", "retry", id)
	require.Zero(t, r.code, r.stderr)
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE id = $1 AND state = 'succeeded' AND attempts = 1", id) == 1
	}, 30*time.Second, 20*time.Millisecond)
}

// A shutdown signal that arrives while a long-running command is still
// connecting is a clean stop, not a failure.
func TestSIGTERMWhileConnectingExitsZero(t *testing.T) {
	t.Parallel()
	config := writeFile(t, "p.yaml", "stages:\n  - queue: a\n    handler: {exec: [cat]}\n")
	for _, args := range [][]string{{"worker", "--config", config}, {"serve", "--addr", "127.0.0.1:0"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			// A "database" that accepts connections and never answers.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				if c, err := ln.Accept(); err == nil {
					accepted <- c
				}
			}()
			cmd := exec.Command(batonBin, args...)
			cmd.Env = append(os.Environ(), "DATABASE_URL=postgres://postgres@"+ln.Addr().String()+"/x?sslmode=disable&connect_timeout=60")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			c := <-accepted
			defer c.Close()
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			err = cmd.Wait()
			require.NoError(t, err, "stderr: %s", stderr.String())
		})
	}
}

func TestBench(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	t.Cleanup(func() { dropDatabase(t, u, strings.Replace(u, "?", "_bench?", 1)) })
	r := baton(t, u, "", "bench", "--stages", "3")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--stages must be 1 or 2")
	r = baton(t, u, "", "bench", "--payload-bytes", "8")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--payload-bytes must be 0 or between 16 and 1048576")

	// Without --concurrency, the stages run a pipeline file's defaults.
	r = baton(t, u, "", "bench", "--stages", "2", "--jobs", "300", "--rate", "50", "--duration", "1s", "--rest-jobs", "2000", "--payload-bytes", "4096", "--json")
	require.Zero(t, r.code, r.stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
	num := func(k string) float64 {
		v, ok := got[k].(float64)
		require.True(t, ok, "%s is missing or not a number: %s", k, r.stdout)
		return v
	}
	for _, k := range []string{"stages", "jobs", "seconds", "jobs_per_sec", "handoffs_per_sec", "commit_rate", "pickup_p50_ms", "pickup_p99_ms", "rss_mb"} {
		num(k)
	}
	require.Equal(t, 300.0, num("jobs"))
	require.Positive(t, num("handoffs_per_sec"))
	require.Positive(t, num("commit_rate"))
	require.Positive(t, num("rest_submit_per_sec"))
	require.InDelta(t, 2*num("handoffs_per_sec"), num("jobs_per_sec"), 0.001)
	require.Equal(t, 4096.0, num("payload_bytes"))
	require.Zero(t, num("concurrency"), "adaptive slots")
	require.GreaterOrEqual(t, num("slots"), float64(worker.DefaultConcurrency))
	bench, err := store.Connect(context.Background(), store.ConnectConfig{URL: strings.Replace(u, "?", "_bench?", 1)})
	require.NoError(t, err)
	defer bench.Close()
	var size int
	require.NoError(t, bench.QueryRow(context.Background(), "SELECT min(length(payload->>'pad')) FROM baton.jobs WHERE queue = 'b'").Scan(&size))
	require.Equal(t, 4096-len(`{"n":1,"pad":""}`), size, "every job carried a 4096-byte payload through both stages")
	var stored int
	require.NoError(t, bench.QueryRow(context.Background(), "SELECT count(*) FROM baton.jobs WHERE queue = 'b' AND result IS DISTINCT FROM 'null'").Scan(&stored))
	require.Zero(t, stored, "the last stage returns nothing, as River's no-op writes nothing")
}

// The soak's short variant: jobs flow through A -> B with retention on, and
// every window reports throughput, statement p99s and the tables' sizes.
func TestBenchSoak(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	t.Cleanup(func() { dropDatabase(t, u, strings.Replace(u, "?", "_bench?", 1)) })
	for _, args := range [][]string{
		{"--soak", "--stages", "1"},
		{"--soak", "--sweep", "10,20"},
		{"--soak", "--jobs", "100", "--window", "200"},
		{"--soak", "--retain", "0s"},
		{"--svg", "x.svg"},
	} {
		r := baton(t, u, "", append([]string{"bench"}, args...)...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
	}

	svg := filepath.Join(t.TempDir(), "soak.svg")
	r := baton(t, u, "", "bench", "--soak", "--jobs", "30000", "--window", "10000", "--retain", "30s", "--svg", svg, "--json")
	require.Zero(t, r.code, r.stderr)
	var got struct {
		Jobs    int `json:"jobs"`
		Windows []struct {
			JobsDone         int64   `json:"jobs_done"`
			ExecutionsPerSec float64 `json:"executions_per_sec"`
			ClaimP99Ms       float64 `json:"claim_p99_ms"`
			CompletionP99Ms  float64 `json:"completion_p99_ms"`
			EndToEndP99Ms    float64 `json:"end_to_end_p99_ms"`
			TableBytes       int64   `json:"table_bytes"`
			IndexBytes       int64   `json:"index_bytes"`
			Tables           []struct {
				TableName string `json:"table_name"`
			} `json:"tables"`
		} `json:"windows"`
		LastOverFirst  float64 `json:"last_over_first_throughput"`
		SizeGrowth     float64 `json:"size_growth"`
		ClaimP99Spread float64 `json:"claim_p99_spread"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
	require.Len(t, got.Windows, 3, r.stdout)
	for i, w := range got.Windows {
		require.GreaterOrEqual(t, w.JobsDone, int64(10000*(i+1)), r.stdout)
		require.Positive(t, w.ExecutionsPerSec)
		require.Positive(t, w.ClaimP99Ms)
		require.Positive(t, w.CompletionP99Ms)
		require.Positive(t, w.EndToEndP99Ms)
		require.Positive(t, w.TableBytes)
		require.Positive(t, w.IndexBytes)
		require.NotEmpty(t, w.Tables)
	}
	require.Positive(t, got.LastOverFirst)
	require.Positive(t, got.SizeGrowth)
	require.GreaterOrEqual(t, got.ClaimP99Spread, 1.0)
	plot, err := os.ReadFile(svg)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(plot), "<svg"))
	require.Equal(t, 2, strings.Count(string(plot), "<polyline"), "throughput and size")
}
