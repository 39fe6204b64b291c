package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

func workerCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	config := fs.String("config", "", "pipeline file (YAML)")
	id := fs.String("id", "", "name of this replica in leases and history (default hostname-pid)")
	pollOnly := fs.Bool("poll-only", false, "no LISTEN/NOTIFY wake-ups (for PgBouncer transaction pooling)")
	metricsAddr := fs.String("metrics-addr", os.Getenv("BATON_METRICS_ADDR"), "serve Prometheus /metrics on this address (env BATON_METRICS_ADDR; default off)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *config == "" || len(pos) > 0 {
		return usagef("worker: usage: baton worker --config FILE [--id NAME] [--poll-only] [--metrics-addr HOST:PORT]")
	}
	p, err := worker.LoadPipeline(*config)
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		stop, err := serveMetrics(*metricsAddr)
		if err != nil {
			return err
		}
		defer stop()
	}
	*id = cmp.Or(*id, worker.DefaultID())
	// application_name names the replica, so operators (and fault injection)
	// can find its connections in pg_stat_activity.
	stopTracing, err := setupTracing(ctx)
	if err != nil {
		return err
	}
	defer stopTracing()
	pool, err := db.Connect(ctx, databaseURL(), "baton-worker "+*id, worker.PoolSize(p))
	if err != nil {
		return err
	}
	defer pool.Close()
	w, err := worker.New(pool, worker.Config{Pipeline: p, ID: *id, Logger: logger(), PollOnly: *pollOnly})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// serveMetrics serves the worker's metrics, with the Go runtime's and the
// process's, at /metrics on addr until stop is called.
func serveMetrics(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	runtime := prometheus.NewRegistry()
	runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{worker.Metrics, runtime}, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
