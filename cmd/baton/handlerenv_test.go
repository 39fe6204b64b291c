package main

import (
	"context"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// An exec handler gets an allow-listed environment: PATH and the like, its
// stage's env, and its job's own variables; never the worker's secrets. A
// handler that reads them anyway (its worker's /proc/PID/environ) finds them
// out of its stored error. Before, cmd.Env was os.Environ(): a handler that
// printed its environment stored DATABASE_URL with its password and
// BATON_API_TOKENS in last_error, readable by the reporting role.
func TestHandlersGetNoSecrets(t *testing.T) {
	t.Parallel()
	pool, u := dbtest.NewWithURL(t)
	// A password in the URL (a server that trusts loopback ignores it).
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	password, ok := parsed.User.Password()
	if !ok {
		password = "db-password-for-the-test"
		parsed.User = url.UserPassword(parsed.User.Username(), password)
	}
	const token = "api-token-for-the-env-test-0123456789"
	config := writeFile(t, "env.yaml", `poll_interval: 50ms
stages:
  - queue: env
    handler: {exec: ["sh", "-c", "env >&2; exit 3"]}
    env: {GREETING: "hello there"}
    max_attempts: 1
  - queue: proc
    handler: {exec: ["sh", "-c", "tr '\\0' '\\n' </proc/$PPID/environ >&2; exit 3"]}
    max_attempts: 1
`)
	w := startWorker(t, parsed.String(), config, "env-test", "BATON_API_TOKENS="+token,
		"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20otlp-secret-header-value")
	require.Zero(t, baton(t, u, "", "submit", "env", "{}").code)
	require.Zero(t, baton(t, u, "", "submit", "proc", "{}").code)
	lastError := func(queue string) string {
		var e string
		require.Eventually(t, func() bool {
			return pool.QueryRow(context.Background(), "SELECT last_error FROM baton.jobs WHERE queue = $1 AND state = 'dead'", queue).Scan(&e) == nil
		}, 20*time.Second, 20*time.Millisecond, w.stderr.String())
		return e
	}

	env := lastError("env")
	for _, want := range []string{"GREETING=hello there", "BATON_JOB_ID=", "BATON_QUEUE=env", "BATON_ATTEMPT=1", "PATH="} {
		require.Contains(t, env, want)
	}
	for _, never := range []string{"DATABASE_URL", "BATON_API_TOKENS", "OTEL_EXPORTER_OTLP_HEADERS", password, token} {
		require.NotContains(t, env, never)
	}

	proc := lastError("proc")
	require.Contains(t, proc, "DATABASE_URL=", "the handler did read its worker's environment")
	for _, never := range []string{password, token, "otlp-secret-header-value"} {
		require.NotContains(t, proc, never)
	}
	require.Contains(t, proc, "[redacted]")
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	require.Zero(t, w.wait(t), w.stderr.String())
}

// A password with an @ that is not percent-encoded is refused in one line
// that shows none of it. Before, the URL parsed with the password cut in
// two, and its end showed in the error: "lookup ss@127.0.0.1: no such host".
func TestAnUnescapedAtInThePasswordShowsNoneOfIt(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"postgres://postgres:pa@zq7xv@127.0.0.1:5432/baton", "postgres://postgres:p@kq2/wq9part@127.0.0.1:5432/baton"} {
		for _, args := range [][]string{{"status", "1"}, {"migrate", "version"}} {
			r := baton(t, u, "", args...)
			require.Equal(t, 2, r.code, "%s %v: %s", u, args, r.stderr)
			require.Contains(t, r.stderr, "percent-encode an @")
			require.NotContains(t, r.stderr, "zq7xv")
			require.NotContains(t, r.stderr, "kq2")
			require.NotContains(t, r.stderr, "wq9part")
		}
	}
	// A password given on the command line is warned of: ps shows it.
	_, u := dbtest.NewWithURL(t)
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	if _, ok := parsed.User.Password(); !ok {
		parsed.User = url.UserPassword(parsed.User.Username(), "ignored-by-trust")
	}
	r := baton(t, u, "", "report", "queue_summary", "--database-url", parsed.String())
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stderr, "--database-url holds a password, which every local user can read in ps")
}

// BATON_TRUSTED_PROXIES that is not a list of CIDRs or addresses is refused
// in one line before serve starts.
func TestBadTrustedProxiesAreRefused(t *testing.T) {
	t.Parallel()
	r := batonWith(t, "postgres://127.0.0.1:1/none", []string{"BATON_TRUSTED_PROXIES=10.0.0.0/8,proxy.example"}, "", "serve", "--addr", "127.0.0.1:0")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, `BATON_TRUSTED_PROXIES: "proxy.example" is neither a CIDR`)
}
