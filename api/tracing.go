package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/baton-run/baton/internal/spans"
)

// Every request but the probes' and the scrapes' is a server span (otelhttp)
// under the caller's trace context (Config.Propagator), named "METHOD ROUTE"
// once the router knows the route. A submit is a producer span "send QUEUE"
// under it, by OpenTelemetry's messaging conventions, and the jobs it
// creates carry its context.

// traceRequests starts each request's server span. With a no-op provider
// (tracing off) it skips otelhttp, which costs about 9µs and 34
// allocations a request even then, and only carries the caller's
// traceparent into the request's context.
func (s *Server) traceRequests(next http.Handler) http.Handler {
	if _, off := s.cfg.TracerProvider.(noop.TracerProvider); off {
		return carryTrace(next, s.cfg.Propagator)
	}
	return otelhttp.NewHandler(nameSpan(next), "HTTP",
		otelhttp.WithTracerProvider(s.cfg.TracerProvider), otelhttp.WithPropagators(s.cfg.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
		otelhttp.WithFilter(func(r *http.Request) bool { return !untraced[r.URL.Path] }))
}

// untraced are the paths that make no span: probes and scrapes, every few
// seconds from every load balancer and Prometheus, would bury the traces
// of work.
var untraced = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// carryTrace puts a request's W3C traceparent, if it has one, into its
// context: the jobs it submits join the caller's trace, and the access log
// names it.
func carryTrace(next http.Handler, propagator propagation.TextMapPropagator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		next.ServeHTTP(w, r)
	})
}

// nameSpan renames the server span after routing, when the route pattern
// is known (the conventions' low-cardinality name; unknown paths keep just
// the method).
func nameSpan(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if route := routePattern(r.Context()); route != "" {
			span := trace.SpanFromContext(r.Context())
			span.SetName(r.Method + " " + route)
			span.SetAttributes(semconv.HTTPRoute(route))
		}
	})
}

// routePattern is the pattern of the route chi matched ("" for none), such
// as /v1/jobs/{id}: a label and a span name that paths cannot multiply.
func routePattern(ctx context.Context) string {
	if rc := chi.RouteContext(ctx); rc != nil {
		return rc.RoutePattern()
	}
	return ""
}

// submitSpan starts the producer span of a submit of n jobs to queue (a
// single job's id is added once it is known, as messaging.message.id).
func (s *Server) submitSpan(ctx context.Context, queue string, n int) (context.Context, trace.Span) {
	ctx, span := s.tracer.Start(ctx, "send "+queue, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(spans.Send(queue, n)...)
	}
	return ctx, span
}
