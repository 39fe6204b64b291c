package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Every request is a server span (otelhttp) under the caller's W3C
// traceparent, named "METHOD ROUTE" once the router knows the route. A
// submit is a producer span "send QUEUE" under it, by OpenTelemetry's
// messaging conventions, and the jobs it creates carry its context.

var traceContext = propagation.TraceContext{}

// traceRequests starts each request's server span.
func (s *Server) traceRequests(next http.Handler) http.Handler {
	return otelhttp.NewHandler(s.nameSpan(next), "HTTP",
		otelhttp.WithTracerProvider(s.cfg.TracerProvider), otelhttp.WithPropagators(traceContext),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }))
}

// nameSpan renames the server span after routing, when the route pattern
// is known (the conventions' low-cardinality name; unknown paths keep just
// the method).
func (s *Server) nameSpan(next http.Handler) http.Handler {
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

// submitSpan starts the producer span of a submit of n jobs to queue.
func (s *Server) submitSpan(ctx context.Context, queue string, n int) (context.Context, trace.Span) {
	ctx, span := s.tracer.Start(ctx, "send "+queue, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingSystemKey.String("baton"), semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"), semconv.MessagingDestinationName(queue))
		if n > 1 {
			span.SetAttributes(semconv.MessagingBatchMessageCount(n))
		}
	}
	return ctx, span
}
