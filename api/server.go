package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Config configures the API server.
type Config struct {
	// Tokens are the accepted bearer tokens. Empty means no authentication
	// (then serve only on loopback).
	Tokens []string
	// Logger receives access and error logs. Defaults to slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes caps the body of a single-job submit. Defaults to 1 MiB.
	MaxBodyBytes int64
	// MaxBatchBytes caps the body of a batch submit. Defaults to 32 MiB.
	MaxBatchBytes int64
	// MaxPayloadBytes caps one job's payload. Defaults to 256 KiB.
	MaxPayloadBytes int
	// MaxBatchJobs caps the jobs of one batch submit. Defaults to 10,000.
	MaxBatchJobs int
	// RequestTimeout bounds each request's database work; a request that
	// cannot finish in time gets 503. Defaults to 10s.
	RequestTimeout time.Duration
	// TrustedProxies are the addresses of the proxies in front of the API
	// (BATON_TRUSTED_PROXIES): from them, and them only, X-Forwarded-For,
	// X-Forwarded-Proto and Forwarded are believed, for the address wrong
	// tokens are counted under and the session cookie's Secure. Defaults to
	// none.
	TrustedProxies []netip.Prefix
	// MaxConns caps the connections open at once; more wait to be accepted.
	// Defaults to 1,024.
	MaxConns int
	// ShutdownDelay is how long Serve keeps answering once its context ends,
	// /readyz saying 503 meanwhile, before it stops accepting connections:
	// the time a load balancer (a Kubernetes endpoint removal) takes to stop
	// sending. Defaults to 0: it stops accepting at once.
	ShutdownDelay time.Duration
	// ShutdownGrace bounds how long Serve then waits for requests in flight.
	// Defaults to 30s.
	ShutdownGrace time.Duration
	// Metrics are more registries served at /metrics, such as the workers'
	// when they run in the same process.
	Metrics []prometheus.Gatherer
	// MetricsQueues caps how many queues /metrics names in its queue label:
	// the busiest (by jobs in the database) for the gauges, the first seen
	// for this server's counters. The rest are summed as queue="_other".
	// Defaults to 100.
	MetricsQueues int
	// TracerProvider makes the spans of requests and submits. Defaults to
	// OpenTelemetry's global provider, which does nothing unless the program
	// configures it. A noop.TracerProvider also skips the request spans'
	// instrumentation; a caller's traceparent still reaches the jobs.
	TracerProvider trace.TracerProvider
	// Propagator reads a caller's trace context from a request's headers
	// (OTEL_PROPAGATORS, for the baton command). Defaults to W3C trace
	// context.
	Propagator propagation.TextMapPropagator
}

// Server is the REST API.
type Server struct {
	pool     *pgxpool.Pool
	cfg      Config
	log      *slog.Logger
	draining atomic.Bool
	metrics  *metrics
	tracer   trace.Tracer
	// tokenDigests are the SHA-256 digests of Config.Tokens.
	tokenDigests [][32]byte
	failures     failureLimit
	charts       chartCache
}

// New returns the API server for pool.
func New(pool *pgxpool.Pool, cfg Config) *Server {
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, 1<<20)
	cfg.MaxBatchBytes = cmp.Or(cfg.MaxBatchBytes, 32<<20)
	cfg.MaxPayloadBytes = cmp.Or(cfg.MaxPayloadBytes, 256<<10)
	cfg.MaxBatchJobs = cmp.Or(cfg.MaxBatchJobs, 10_000)
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, 10*time.Second)
	cfg.MaxConns = cmp.Or(cfg.MaxConns, 1024)
	cfg.ShutdownGrace = cmp.Or(cfg.ShutdownGrace, 30*time.Second)
	cfg.MetricsQueues = cmp.Or(cfg.MetricsQueues, 100)
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.TraceContext{}
	}
	s := &Server{pool: pool, cfg: cfg, log: cfg.Logger, tracer: cfg.TracerProvider.Tracer("github.com/baton-run/baton/api")}
	for _, t := range cfg.Tokens {
		s.tokenDigests = append(s.tokenDigests, sha256.Sum256([]byte(t)))
	}
	s.metrics = newMetrics(s)
	return s
}

// Handler returns the router with every route and middleware.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.traceRequests, s.metrics.instrument, dropOddRequestIDs, middleware.RequestID, s.accessLog, s.recoverPanics, noSniff,
		middleware.GetHead, s.refuseCrossOrigin)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, s.log, problem(http.StatusNotFound, "not_found", "", "no route for %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if r.Match(chi.NewRouteContext(), m, req.URL.Path) {
				allowed = append(allowed, m)
				if m == http.MethodGet {
					allowed = append(allowed, http.MethodHead) // middleware.GetHead
				}
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeProblem(w, req, s.log, problem(http.StatusMethodNotAllowed, "method_not_allowed", "",
			"%s is not allowed here (allowed: %s)", req.Method, strings.Join(allowed, ", ")))
	})

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/openapi.yaml", serveOpenAPI)
	r.Get("/metrics", s.serveMetrics)

	r.Route("/v1", func(r chi.Router) {
		r.Use(s.authenticate, s.deadline)
		r.Post("/queues/{queue}/jobs", s.submitJob)
		r.Post("/queues/{queue}/jobs/batch", s.submitBatch)
		r.Get("/queues", s.listQueues)
		r.Patch("/queues/{queue}", s.patchQueue)
		r.Patch("/queues/{queue}/groups/{group}", s.patchGroup)
		r.Post("/queues/{queue}/pause", s.pauseQueue(true))
		r.Post("/queues/{queue}/resume", s.pauseQueue(false))
		r.Post("/queues/{queue}/retry", s.retryQueue)
		r.Get("/jobs", s.listJobs)
		r.Get("/jobs/{id}", s.getJob)
		r.Post("/jobs/{id}/cancel", s.cancelJob)
		r.Post("/jobs/{id}/retry", s.retryJob)
	})
	s.dashboard(r)
	return r
}

// Serve answers requests on ln until ctx is done, then shuts down gracefully:
// readiness fails first, it keeps answering for Config.ShutdownDelay, then
// stops accepting, and in-flight requests get Config.ShutdownGrace to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := NewHTTPServer(s.Handler(), s.log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(LimitConns(ln, s.cfg.MaxConns)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Drain: fail /readyz, keep answering while the load balancers notice,
	// then stop accepting and let the requests in flight finish.
	s.draining.Store(true)
	if s.cfg.ShutdownDelay > 0 {
		s.log.Info("draining: /readyz answers 503; still serving until the delay ends", "shutdown_delay", s.cfg.ShutdownDelay)
		select {
		case err := <-errc:
			return err
		case <-time.After(s.cfg.ShutdownDelay):
		}
	}
	s.log.Info("no longer accepting connections; finishing the requests in flight", "shutdown_grace", s.cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	if err != nil {
		return fmt.Errorf("requests still in flight after the shutdown grace of %s: %w", s.cfg.ShutdownGrace, err)
	}
	s.log.Info("stopped serving")
	return nil
}
