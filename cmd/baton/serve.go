package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// serveFlags are the flags serve and dev share.
type serveFlags struct {
	addr          string
	insecure      bool
	metricsQueues string
	maintain      maintenanceFlags
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", cmp.Or(os.Getenv("BATON_ADDR"), "127.0.0.1:8080"), "API listen address (env BATON_ADDR)")
	fs.BoolVar(&f.insecure, "insecure-no-auth", false, "allow listening beyond loopback with no BATON_API_TOKENS")
	fs.StringVar(&f.metricsQueues, "metrics-queues", os.Getenv("BATON_METRICS_QUEUES"),
		"how many queues /metrics names; the rest are summed as queue=\"_other\" (env BATON_METRICS_QUEUES; default 100)")
	f.maintain.register(fs)
}

// listen opens the API's listener, refusing to expose an unauthenticated
// API beyond loopback.
func (f *serveFlags) listen(tokens []string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(f.addr)
	if err != nil {
		return nil, usagef("--addr %q: want host:port, e.g. 127.0.0.1:8080", f.addr)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || ip != nil && ip.IsLoopback()
	if len(tokens) == 0 && !loopback && !f.insecure {
		return nil, usagef("refusing to serve %s without authentication: set BATON_API_TOKENS, listen on 127.0.0.1, or pass --insecure-no-auth", f.addr)
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", f.addr, err)
	}
	return ln, nil
}

// opened is what serve and dev have ready before they connect: the
// retention policy, the API's tokens and its listener.
type opened struct {
	retention     worker.Retention
	readerLimits  worker.ReaderLimits
	proxies       []netip.Prefix // BATON_TRUSTED_PROXIES
	tokens        []string
	metricsQueues int // 0: the API's default
	ln            net.Listener
}

// open checks the shared flags and the tokens, and opens the listener.
func (f *serveFlags) open() (o opened, err error) {
	if o.retention, err = f.maintain.retention(); err != nil {
		return o, err
	}
	if o.readerLimits, err = f.maintain.readerLimits(); err != nil {
		return o, err
	}
	if o.tokens, err = apiTokens(); err != nil {
		return o, err
	}
	if o.proxies, err = api.ParseTrustedProxies(os.Getenv("BATON_TRUSTED_PROXIES")); err != nil {
		return o, usagef("BATON_TRUSTED_PROXIES: %v", err)
	}
	if f.metricsQueues != "" {
		if o.metricsQueues, err = strconv.Atoi(f.metricsQueues); err != nil || o.metricsQueues < 1 || o.metricsQueues > 10_000 {
			return o, usagef("--metrics-queues %q: want a whole number from 1 to 10000", f.metricsQueues)
		}
	}
	o.ln, err = f.listen(o.tokens)
	return o, err
}

// apiTokens reads BATON_API_TOKENS: comma-separated, blanks ignored, each
// at least api.MinTokenLength characters.
func apiTokens() ([]string, error) {
	var tokens []string
	for _, t := range strings.Split(os.Getenv("BATON_API_TOKENS"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
		}
	}
	if err := api.CheckTokens(tokens); err != nil {
		return nil, usagef("BATON_API_TOKENS: %v", err)
	}
	return tokens, nil
}

// serveCmd runs the REST API and maintenance (reaper, promotion, key pruning).
func serveCmd(ctx context.Context, args []string) error {
	fs := newCommand("serve", "baton serve [--addr HOST:PORT] [--insecure-no-auth] [--wait-for-migrations] [--shutdown-delay D] [--metrics-queues N] [--retain-succeeded D] [--retain-dead D] [--retain-canceled D] [--reader-idle-limit D] [--reader-transaction-limit D]")
	var f serveFlags
	f.register(fs.FlagSet)
	wait, err := registerWaitForMigrations(fs.FlagSet)
	if err != nil {
		return err
	}
	delay := fs.String("shutdown-delay", cmp.Or(os.Getenv("BATON_SHUTDOWN_DELAY"), "5s"),
		"on SIGTERM, keep serving this long with /readyz failing before no longer accepting connections (env BATON_SHUTDOWN_DELAY)")
	if pos, err := fs.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fs.usage()
	}
	shutdownDelay, err := time.ParseDuration(*delay)
	if err != nil || shutdownDelay < 0 || shutdownDelay > 10*time.Minute {
		return usagef("--shutdown-delay %q: want a duration from 0s to 10m, such as 5s", *delay)
	}
	o, err := f.open()
	if err != nil {
		return err
	}
	defer o.ln.Close()
	tracing, err := setupTracing(ctx)
	if err != nil {
		return err
	}
	defer tracing.stop()
	log, tracker := processLog()
	pool, err := connect(ctx, databaseURL(), "baton-serve", 16, tracker.Up)
	if err != nil {
		return err
	}
	defer pool.Close()
	if s, err := store.ReadSchema(ctx, pool); err != nil {
		return err
	} else if problem := s.Check(); problem != nil && (!*wait || !s.Waitable()) {
		return problem
	}
	// With --wait-for-migrations, the API answers at once (/readyz says 503
	// and why) and maintenance starts when the schema is ready; a schema that
	// turns out newer than this binary and refuses it stops the server.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	log.Info("serving", "addr", o.ln.Addr().String(), "auth", len(o.tokens) > 0)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := awaitSchema(ctx, pool, *wait, log); err != nil {
			cancel(err)
			return
		}
		maintenance.Run(ctx, pool, time.Second, maintenance.Retention(o.retention), maintenance.ReaderLimits(o.readerLimits), log)
	})
	err = api.New(pool, api.Config{Tokens: o.tokens, Logger: log, TracerProvider: tracing.provider, Propagator: tracing.propagator, MetricsQueues: o.metricsQueues, TrustedProxies: o.proxies,
		ShutdownDelay: shutdownDelay}).Serve(ctx, o.ln)
	wg.Wait()
	if cause := context.Cause(ctx); errors.Is(cause, store.ErrSchema) {
		return cause
	}
	return err
}

// devCmd is the quick start: migrate, then serve the API and work a pipeline
// in one process.
func devCmd(ctx context.Context, args []string, stdout *os.File) error {
	fs := newCommand("dev", "baton dev --config FILE [--addr HOST:PORT] [--retain-succeeded D] [--retain-dead D] [--retain-canceled D] [--reader-idle-limit D] [--reader-transaction-limit D]")
	var f serveFlags
	f.register(fs.FlagSet)
	config := fs.String("config", os.Getenv("BATON_CONFIG"), "pipeline file (YAML) (env BATON_CONFIG)")
	if pos, err := fs.parse(args); err != nil {
		return err
	} else if *config == "" || len(pos) > 0 {
		return fs.usage()
	}
	p, err := worker.LoadPipeline(*config)
	if err != nil {
		return err
	}
	o, err := f.open()
	if err != nil {
		return err
	}
	defer o.ln.Close()
	target, err := migrationURL()
	if err != nil {
		return err
	}
	if err := store.MigrateUp(ctx, target); err != nil {
		return err
	}
	tracing, err := setupTracing(ctx)
	if err != nil {
		return err
	}
	defer tracing.stop()
	log, tracker := processLog()
	pool, err := connect(ctx, databaseURL(), "baton-dev", p.PoolSize()+8, tracker.Up)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := awaitSchema(ctx, pool, false, log); err != nil { // newer than this binary, and refusing it
		return err
	}
	pollOnly, err := wakeups(fs.FlagSet, false)
	if err != nil {
		return err
	}
	metrics := prometheus.NewRegistry() // the worker's, served beside the API's
	w, err := worker.New(pool, worker.Config{Pipeline: p, Logger: log, PollOnly: pollOnly, Retention: o.retention, ReaderLimits: o.readerLimits, Secrets: secrets(), Metrics: metrics, TracerProvider: tracing.provider, Propagator: tracing.propagator})
	if err != nil {
		return err
	}
	printQuickStart(stdout, o.ln.Addr().String(), p.Stages[0].Queue, len(o.tokens) > 0)
	var wg sync.WaitGroup
	var workErr error
	wg.Go(func() { workErr = w.Run(ctx) })
	err = api.New(pool, api.Config{Tokens: o.tokens, Logger: log, Metrics: []prometheus.Gatherer{metrics}, TracerProvider: tracing.provider, Propagator: tracing.propagator,
		MetricsQueues: o.metricsQueues, TrustedProxies: o.proxies}).Serve(ctx, o.ln)
	wg.Wait()
	return errors.Join(err, workErr)
}

func printQuickStart(out *os.File, addr, queue string, auth bool) {
	url := "http://" + addr
	authHeader := ""
	if auth {
		authHeader = ` -H "Authorization: Bearer $BATON_API_TOKEN"`
	}
	fmt.Fprintf(out, `Baton is running: API on %[1]s, a worker on the pipeline's stages.
Dashboard: %[1]s/   Metrics: %[1]s/metrics

Submit a job:
  curl -sS -X POST %[1]s/v1/queues/%[2]s/jobs -H 'Content-Type: application/json'%[3]s -d '{"payload": {"image": "cat.png"}}'
See it and the job it hands off to (newest first), and the queues:
  curl -sS '%[1]s/v1/jobs?limit=5'%[3]s
  curl -sS %[1]s/v1/queues%[3]s

Stop with Ctrl-C.
`, url, queue, authHeader)
}
