package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

func workerCmd(ctx context.Context, args []string) error {
	fs := newCommand("worker", "baton worker --config FILE [--id NAME] [--poll-only] [--wait-for-migrations] [--metrics-addr HOST:PORT] [--retain-succeeded D] [--retain-dead D] [--retain-canceled D] [--reader-idle-limit D] [--reader-transaction-limit D]")
	pollDefault, err := envBool("BATON_POLL_ONLY")
	if err != nil {
		return err
	}
	config := fs.String("config", os.Getenv("BATON_CONFIG"), "pipeline file (YAML) (env BATON_CONFIG)")
	id := fs.String("id", os.Getenv("BATON_WORKER_ID"), "name of this replica in leases and history (env BATON_WORKER_ID; default hostname-pid)")
	pollOnly := fs.Bool("poll-only", pollDefault, "no LISTEN/NOTIFY wake-ups, for PgBouncer transaction pooling (env BATON_POLL_ONLY)")
	metricsAddr := fs.String("metrics-addr", os.Getenv("BATON_METRICS_ADDR"), "serve Prometheus /metrics, /healthz and /readyz on this address (env BATON_METRICS_ADDR; default off)")
	var maintain maintenanceFlags
	maintain.register(fs.FlagSet)
	wait, err := registerWaitForMigrations(fs.FlagSet)
	if err != nil {
		return err
	}
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *config == "" || len(pos) > 0 {
		return fs.usage()
	}
	if *pollOnly, err = wakeups(fs.FlagSet, *pollOnly); err != nil {
		return err
	}
	retention, err := maintain.retention()
	if err != nil {
		return err
	}
	readerLimits, err := maintain.readerLimits()
	if err != nil {
		return err
	}
	p, err := worker.LoadPipeline(*config)
	if err != nil {
		return err
	}
	log, tracker := processLog()
	metrics := prometheus.NewRegistry() // this replica's
	var ready readiness                 // set once the worker exists
	if *metricsAddr != "" {
		stop, err := serveMetrics(*metricsAddr, metrics, &ready, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	*id = cmp.Or(*id, worker.DefaultID())
	// application_name names the replica, so operators (and fault injection)
	// can find its connections in pg_stat_activity.
	tracing, err := setupTracing(ctx)
	if err != nil {
		return err
	}
	defer tracing.stop()
	pool, err := connect(ctx, databaseURL(), "baton-worker "+*id, p.PoolSize(), tracker.Up)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := awaitSchema(ctx, pool, *wait, log); err != nil {
		return err
	}
	w, err := worker.New(pool, worker.Config{Pipeline: p, ID: *id, Logger: log, PollOnly: *pollOnly, Retention: retention, ReaderLimits: readerLimits, Secrets: secrets(), Metrics: metrics, TracerProvider: tracing.provider, Propagator: tracing.propagator})
	if err != nil {
		return err
	}
	ready.Store(w)
	return w.Run(ctx)
}

// wakeups checks --poll-only against BATON_POOLER: through a transaction
// pooler, where LISTEN cannot work (a notification reaches whichever client
// holds the server connection then), asking for it (--poll-only=false) is
// refused. (The worker polls there by itself: worker.New sees the pool.)
func wakeups(fs *flag.FlagSet, pollOnly bool) (bool, error) {
	p, err := pooler()
	if err != nil || p != store.TransactionPooler {
		return pollOnly, err
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "poll-only" })
	if explicit && !pollOnly {
		return false, usagef("--poll-only=false: LISTEN cannot work through a transaction pooler (BATON_POOLER=transaction); workers poll there")
	}
	return pollOnly, nil
}

// readiness holds the worker a replica's /readyz asks, once there is one.
type readiness = atomic.Pointer[worker.Worker]

// serveMetrics serves the worker's metrics, with the Go runtime's and the
// process's, at /metrics on addr until stop is called, and its probes:
// /healthz (the process answers) and /readyz (the worker works: its
// stages run and the database answers; 503 while it starts, connects or
// drains). It has the API's limits (api.NewHTTPServer) and at most
// metricsConns connections: whoever reaches the port cannot take the
// descriptors the worker's handlers need.
func serveMetrics(addr string, metrics prometheus.Gatherer, ready *readiness, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	if !loopback(ln.Addr()) {
		log.Warn("the worker's metrics and probes answer beyond loopback: anyone who reaches the port can read them", "addr", ln.Addr().String())
	}
	runtime := prometheus.NewRegistry()
	runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{metrics, runtime}, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		err := worker.ErrNotWorking
		if wk := ready.Load(); wk != nil {
			err = wk.Ready(ctx)
		}
		switch {
		case errors.Is(err, worker.ErrNotWorking):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		case err != nil: // its detail names the database's host, user and name: the log has it
			log.Debug("not ready", "error", err)
			http.Error(w, "the database does not answer", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := api.NewHTTPServer(mux, log)
	go func() { _ = srv.Serve(api.LimitConns(ln, metricsConns)) }()
	return func() { _ = srv.Close() }, nil
}

// metricsConns caps the connections a worker's metrics server keeps open
// at once: a few scrapers and probes need far fewer.
const metricsConns = 32

// loopback reports whether addr is a loopback address.
func loopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// secrets are the texts of this process's environment that must never be
// stored in a job's error (a handler can read its worker's environment):
// the API's tokens, the databases' passwords, an OTLP exporter's headers.
func secrets() []string {
	var s []string
	for _, token := range strings.Split(os.Getenv("BATON_API_TOKENS"), ",") {
		s = append(s, strings.TrimSpace(token))
	}
	for _, name := range []string{"DATABASE_URL", "BATON_MIGRATE_DATABASE_URL", "BATON_REPORTS_DATABASE_URL"} {
		if u := os.Getenv(name); u != "" {
			if cfg, err := pgconn.ParseConfig(u); err == nil {
				s = append(s, cfg.Password)
			}
		}
	}
	s = append(s, os.Getenv("PGPASSWORD"))
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		for _, header := range strings.Split(os.Getenv(name), ",") {
			if _, v, ok := strings.Cut(header, "="); ok {
				s = append(s, strings.TrimSpace(v))
				if decoded, err := url.QueryUnescape(strings.TrimSpace(v)); err == nil {
					s = append(s, decoded)
				}
			}
		}
	}
	return s
}
