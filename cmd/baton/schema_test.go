package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// A rolling upgrade, step by step: serve and worker of this release refuse
// a schema behind it (one line, exit 2), or with --wait-for-migrations wait
// for it, /readyz saying why, and start once baton migrate up ran; a schema
// newer than the binary is accepted while it says it accepts the binary.
func TestServeAndWorkerKnowTheSchema(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	latest := latestMigration(t)
	config := writeFile(t, "cat.yaml", "poll_interval: 50ms\nstages:\n  - queue: a\n    handler: {exec: [cat]}\n")

	r := baton(t, u, "", "migrate", "status")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("applied: %d\nbinary:  %d\nstatus:  up to date\n", latest, latest), r.stdout)

	r = baton(t, u, "", "migrate", "down", "1")
	require.Zero(t, r.code, r.stderr)
	behind := fmt.Sprintf("the schema is at migration %d and this binary needs %d; run this release's baton migrate up", latest-1, latest)
	r = baton(t, u, "", "migrate", "status")
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, fmt.Sprintf("applied: %d\n", latest-1))
	require.Contains(t, r.stdout, behind)
	for _, args := range [][]string{{"serve", "--addr", "127.0.0.1:0"}, {"worker", "--config", config}} {
		r = baton(t, u, "", args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.Equal(t, "baton: schema not ready: "+behind+"\n", r.stderr, args)
	}

	// Waiting: the API answers at once, /readyz says why it is not ready.
	serve := exec.Command(batonBin, "serve", "--addr", "127.0.0.1:0", "--wait-for-migrations")
	serve.Env = append(os.Environ(), "DATABASE_URL="+u)
	s := startProc(t, serve)
	var base string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(s.stderr.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	}, 20*time.Second, 10*time.Millisecond, s.stderr.String())
	code, body := getProblem(t, base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "schema_not_ready", body["code"])
	require.Contains(t, body["detail"], behind)

	metricsAddr := freeAddr(t)
	work := exec.Command(batonBin, "worker", "--config", config, "--metrics-addr", metricsAddr)
	work.Env = append(os.Environ(), "DATABASE_URL="+u, "BATON_WAIT_FOR_MIGRATIONS=true")
	w := startProc(t, work)
	require.Eventually(t, func() bool { return strings.Contains(w.stderr.String(), "waiting for migrations") }, 20*time.Second, 10*time.Millisecond, w.stderr.String())
	code, _ = probe(metricsAddr, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)

	r = baton(t, u, "", "migrate", "up")
	require.Zero(t, r.code, r.stderr)
	require.Eventually(t, func() bool { code, _ := getProblem(t, base+"/readyz"); return code == http.StatusOK }, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { code, _ := probe(metricsAddr, "/readyz"); return code == http.StatusOK }, 20*time.Second, 20*time.Millisecond, w.stderr.String())
	require.Zero(t, baton(t, u, "", "submit", "a", "{}").code)
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'") == 1
	}, 20*time.Second, 10*time.Millisecond)
	for _, p := range []*workerProc{s, w} {
		require.Eventually(t, func() bool { return strings.Contains(p.stderr.String(), "the schema is ready") }, 10*time.Second, 10*time.Millisecond)
		require.Equal(t, 1, strings.Count(p.stderr.String(), "waiting for migrations"), p.stderr.String())
		require.Equal(t, 1, strings.Count(p.stderr.String(), "the schema is ready"), p.stderr.String())
	}

	// Newer than this binary: accepted while it accepts this binary (an
	// additive migration of the next release), refused once it does not.
	_, err := pool.Exec(context.Background(), "UPDATE baton_schema_migrations SET version = $1", latest+1)
	require.NoError(t, err)
	since := count(t, pool, "SELECT baton.compatible_since()") // the last migration that was not additive
	require.LessOrEqual(t, since, latest)
	r = baton(t, u, "", "migrate", "status")
	require.Contains(t, r.stdout, fmt.Sprintf("status:  newer than this binary, and accepts it (binaries from migration %d on)", since))
	ok := startServer(t, u, nil, "serve")
	require.Eventually(t, func() bool {
		return strings.Contains(ok.stderr.String(), "the schema is newer than this binary and accepts it")
	},
		10*time.Second, 10*time.Millisecond, ok.stderr.String()) // said as maintenance starts, beside the first requests
	_, err = pool.Exec(context.Background(), fmt.Sprintf("CREATE OR REPLACE FUNCTION baton.compatible_since() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT %d'", latest+1))
	require.NoError(t, err)
	r = baton(t, u, "", "serve", "--addr", "127.0.0.1:0", "--wait-for-migrations")
	require.Equal(t, 2, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("baton: schema not ready: the schema is at migration %d, which needs a binary from migration %d on, and this one has %d; upgrade baton\n",
		latest+1, latest+1, latest), r.stderr)
	code, body = getProblem(t, ok.base+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "a running server stops being ready")
	require.Contains(t, body["detail"], "upgrade baton")

	// No schema at all.
	_, err = pool.Exec(context.Background(), "DELETE FROM baton_schema_migrations")
	require.NoError(t, err)
	r = baton(t, u, "", "worker", "--config", config)
	require.Equal(t, 2, r.code)
	require.Equal(t, "baton: schema not ready: the database has no Baton schema yet; run baton migrate up\n", r.stderr)
}

// getProblem GETs url and decodes its JSON body's strings.
func getProblem(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// freeAddr is a loopback address nothing listens on (for a moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// Migration 28 stores no row for a success: the succeeded job's row records
// it. Its down-migration writes those successes as job_events rows, as the
// binaries before it did, so a rollback loses none of the history, and up
// again shows each success once.
func TestTheDownOfImpliedSuccessesKeepsTheHistory(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	cat := writeFile(t, "cat.yaml", "poll_interval: 50ms\nstages:\n  - queue: a\n    handler: {exec: [cat]}\n    next: b\n  - queue: b\n    handler: {exec: [cat]}\n")
	cmd := exec.Command(batonBin, "worker")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+u, "BATON_CONFIG="+cat, "BATON_WORKER_ID=w1")
	w := startProc(t, cmd)
	for range 3 {
		require.Zero(t, baton(t, u, "", "submit", "a", "{}").code)
	}
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'succeeded'") == 6
	}, 20*time.Second, 10*time.Millisecond, w.stderr.String())
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	require.Zero(t, w.wait(t), w.stderr.String())

	const history = `SELECT string_agg(concat_ws(' ', job_id, seq, at, from_state, to_state, attempt, lease_token, worker, error, run_seconds), E'\n' ORDER BY job_id, seq)
		FROM baton.job_history`
	read := func() string {
		var s string
		require.NoError(t, pool.QueryRow(context.Background(), history).Scan(&s))
		return s
	}
	before := read()
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.job_events WHERE to_state = 'succeeded'"), "no success row on the hot path")
	require.Equal(t, 6, count(t, pool, "SELECT count(*) FROM baton.job_history WHERE to_state = 'succeeded' AND worker = 'w1' AND run_seconds >= 0"))

	latest := latestMigration(t)
	r := baton(t, u, "", "migrate", "down", strconv.Itoa(latest-27))
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "version: 27\n", r.stdout)
	require.Equal(t, 6, count(t, pool, "SELECT count(*) FROM baton.job_events WHERE to_state = 'succeeded' AND worker = 'w1' AND run_us IS NOT NULL"))
	require.Equal(t, before, read(), "the same history, stored")

	r = baton(t, u, "", "migrate", "up")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, before, read(), "each success once: the stored rows, none implied again")
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE completed_by IS NOT NULL"))
}
