// Command baton is Baton's single binary: migrations (migrate), the REST API
// and maintenance (serve), worker replicas (worker), both in one process
// (dev), the job and queue commands (submit, status, cancel, retry, queue),
// the SQL reports (report), the benchmark (bench), and shell completion.
// Configuration comes from flags, then environment variables, then
// defaults.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/baton-run/baton/internal/outage"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

const usage = `Baton: a Postgres-centric job runner.

Usage:
  baton migrate up | down N | down --all | force N | version | status
                                        apply, undo (N, or --all: the whole schema), mark a
                                        version clean after a failed migration was fixed;
                                        status: the applied and this binary's version
  baton serve [--addr HOST:PORT]        the REST API and maintenance (reaper, retention)
  baton worker --config FILE            run one worker replica of a pipeline
  baton dev --config FILE               migrate, serve and work in one process
  baton submit QUEUE [JSON | -]         submit a job; prints its id
        [--delay 3s] [--priority N] [--max-attempts N] [--key KEY] [--unique-key K]
  baton status ID                       a job's status and history as JSON
  baton cancel ID                       cancel an unfinished job
  baton retry ID                        re-drive a dead or canceled job
  baton retry --queue Q [--state dead|canceled] [--since D] [--error-like T] [--dry-run] [--rate N/s]
                                        re-drive a queue's dead jobs (in batches)
  baton queue list | pause Q | resume Q  the queues; pause or resume one
  baton queue set Q --retain-succeeded D [--retain-dead D] [--retain-canceled D]
                                        how long Q keeps finished jobs (48h, forever, default)
  baton report [NAME] [--database-url URL]  the reporting views (all, or the one named)
  baton bench [--stages 1|2] [--jobs N] [--json]   the benchmark (in DATABASE_URL's name + "_bench")
  baton version | --version             the version and commit of this binary
  baton completion bash|zsh|fish        shell completion (bash: source <(baton completion bash))
  baton help COMMAND                    a command's usage and flags (also baton COMMAND --help)

Environment:
  DATABASE_URL       Postgres connection string (default ` + store.DefaultURL + `)
  BATON_POOLER       transaction: DATABASE_URL goes through PgBouncer (or alike) in
                     transaction mode (no prepared statements, workers poll)
  BATON_MIGRATE_DATABASE_URL  a direct connection for migrations (required with
                     BATON_POOLER=transaction; default DATABASE_URL)
  BATON_REPORTS_DATABASE_URL  where baton report reads, for example a read-only
                     hot standby (default DATABASE_URL)
  BATON_ADDR         API listen address (default 127.0.0.1:8080)
  BATON_API_TOKENS   comma-separated bearer tokens the API accepts
  BATON_TRUSTED_PROXIES  CIDRs or addresses of the proxies in front of the API,
                     whose X-Forwarded-For and X-Forwarded-Proto are believed
  BATON_RETAIN_SUCCEEDED, BATON_RETAIN_DEAD, BATON_RETAIN_CANCELED
                     how long serve, worker and dev keep finished jobs where the
                     queue sets nothing (default 24h, 168h, 168h; or forever)
  BATON_READER_IDLE_LIMIT, BATON_READER_TRANSACTION_LIMIT
                     when serve, worker and dev end a baton_reader session idle in
                     a transaction, or in one at all (default 1m, 5m)
  BATON_SHUTDOWN_DELAY  on SIGTERM, how long serve keeps answering with /readyz
                     failing before it stops accepting (default 5s)
  BATON_WAIT_FOR_MIGRATIONS  true: serve and worker wait for baton migrate up on a
                     schema behind them (--wait-for-migrations) instead of exiting 2
  BATON_CONFIG, BATON_WORKER_ID, BATON_POLL_ONLY, BATON_METRICS_ADDR
                     worker's --config, --id, --poll-only, --metrics-addr
  BATON_LOG_LEVEL    debug, info, warn or error (default info)
  BATON_LOG_FORMAT   text or json (default text)
`

// exitCode: 1 for failures, 2 for bad input (usage, flags, data, pipeline files).
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) || errors.Is(err, store.ErrInvalid) || errors.Is(err, worker.ErrPipeline) || errors.Is(err, store.ErrSchema) ||
		errors.Is(err, store.ErrTransactionPooler) && !errors.Is(err, store.ErrUnavailable) {
		return 2
	}
	return 1
}

// graceful turns a shutdown signal that arrived while a long-running command
// was still starting (connecting, migrating) into the clean exit it asked for.
func graceful(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "baton:", err)
		os.Exit(exitCode(err))
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	err := dispatch(ctx, args, stdin, stdout)
	if h := (helpShown{}); errors.As(err, &h) {
		fmt.Fprint(stdout, h.text)
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	switch {
	case len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" && len(args) == 1:
		fmt.Fprint(stdout, usage)
		return nil
	case args[0] == "--version":
		return versionCmd(args[1:], stdout)
	case args[0] == "help" && len(args) == 2:
		// baton help CMD is baton CMD --help.
		return dispatch(ctx, []string{args[1], "--help"}, stdin, stdout)
	case args[0] == "help":
		return usagef("help: name one command, e.g. baton help submit")
	}
	if _, _, err := logSettings(); err != nil {
		return err
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "version":
		return versionCmd(args, stdout)
	case "migrate":
		return migrateCmd(ctx, args, stdout)
	case "worker":
		return graceful(ctx, workerCmd(ctx, args))
	case "serve":
		return graceful(ctx, serveCmd(ctx, args))
	case "dev":
		return graceful(ctx, devCmd(ctx, args, os.Stdout))
	case "submit":
		return submitCmd(ctx, args, stdin, stdout)
	case "status":
		return statusCmd(ctx, args, stdout)
	case "cancel":
		return cancelCmd(ctx, args, stdout)
	case "retry":
		return retryCmd(ctx, args, stdout)
	case "report":
		return reportCmd(ctx, args, stdout)
	case "queue":
		return queueCmd(ctx, args, stdout)
	case "bench":
		return benchCmd(ctx, args, stdout)
	case "completion":
		return completionCmd(args, stdout)
	case "__complete": // the completion scripts' question
		return completeCmd(ctx, args, stdout)
	}
	return usagef("unknown command %q (run baton --help)", cmd)
}

// migrationURL is where migrations run: BATON_MIGRATE_DATABASE_URL when set,
// else DATABASE_URL. Through a transaction pooler it must be set:
// migrations hold a session-level advisory lock, which a pooler that hands
// the server connection to another client after each transaction cannot keep.
func migrationURL() (string, error) {
	if u := os.Getenv("BATON_MIGRATE_DATABASE_URL"); u != "" {
		return u, nil
	}
	if p, err := pooler(); err != nil {
		return "", err
	} else if p == store.TransactionPooler {
		return "", usagef("BATON_POOLER=transaction: migrations hold a session lock that a transaction pooler cannot keep; " +
			"set BATON_MIGRATE_DATABASE_URL to a direct connection (not through the pooler)")
	}
	return databaseURL(), nil
}

func databaseURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return store.DefaultURL
}

// connectCLI opens the small pool a one-shot command needs.
func connectCLI(ctx context.Context) (*pgxpool.Pool, error) {
	return connect(ctx, databaseURL(), "baton-cli", 2, nil)
}

// connect opens a pool on url, through BATON_POOLER; onConnect (if not
// nil) hears of each new connection.
func connect(ctx context.Context, url, appName string, maxConns int32, onConnect func()) (*pgxpool.Pool, error) {
	p, err := pooler()
	if err != nil {
		return nil, err
	}
	return store.Connect(ctx, store.ConnectConfig{URL: url, AppName: appName, MaxConns: maxConns, Pooler: p, OnConnect: onConnect})
}

// envBool reads a boolean environment variable (1, true, 0, false, …);
// unset is false.
func envBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, usagef("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// pooler reads BATON_POOLER: what stands between Baton and PostgreSQL.
func pooler() (store.Pooler, error) {
	p, err := store.ParsePooler(os.Getenv("BATON_POOLER"))
	if err != nil {
		return p, usagef("BATON_POOLER: %v", err)
	}
	return p, nil
}

// logSettings reads BATON_LOG_LEVEL (slog's names: debug, info, warn,
// error, or one with an offset such as warn+2; default info) and
// BATON_LOG_FORMAT (text or json; default text).
func logSettings() (slog.Level, bool, error) {
	var level slog.Level
	if v := os.Getenv("BATON_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return 0, false, usagef("BATON_LOG_LEVEL=%q: want debug, info, warn or error", v)
		}
	}
	switch v := os.Getenv("BATON_LOG_FORMAT"); v {
	case "", "text":
		return level, false, nil
	case "json":
		return level, true, nil
	default:
		return 0, false, usagef("BATON_LOG_FORMAT=%q: want text or json", v)
	}
}

// logger is the commands' logger, as BATON_LOG_LEVEL and BATON_LOG_FORMAT
// say (run has checked them).
func logger() *slog.Logger { return slog.New(logHandler()) }

func logHandler() slog.Handler {
	level, asJSON, _ := logSettings()
	opts := &slog.HandlerOptions{Level: level}
	if asJSON {
		return slog.NewJSONHandler(os.Stderr, opts).WithAttrs([]slog.Attr{slog.String("service", "baton")})
	}
	return slog.NewTextHandler(os.Stderr, opts).WithAttrs([]slog.Attr{slog.String("service", "baton")})
}

// processLog is the logger of a long-running process (serve, worker, dev)
// and its outage tracker, which keeps a database outage to a few lines;
// connect the process's pool with OnConnect: tracker.Up.
func processLog() (*slog.Logger, *outage.Tracker) {
	t := outage.New(logHandler())
	return t.Logger(), t
}
