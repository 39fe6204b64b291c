package worker

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Each job carries the W3C trace context of the span that created it: the
// submit's, or the handler run of the stage before. A handler run is a span
// under it, and the job it hands off to carries the run's context, so one
// trace follows a job through every stage. With tracing off the spans are
// no-ops, yet a context that came in with the job still travels on. Spans
// follow OpenTelemetry's messaging conventions: a run is "process QUEUE".

var traceContext = propagation.TraceContext{}

var consumer = trace.WithSpanKind(trace.SpanKindConsumer)

// startSpan starts the span of one handler run under the job's trace context.
// Attributes are set only on a recording span: with tracing off this is on
// the hot path, and building them cost a sixth of the worker's CPU.
func (s *stage) startSpan(ctx context.Context, job *Job, traceParent string) (context.Context, trace.Span) {
	if traceParent != "" {
		ctx = traceContext.Extract(ctx, propagation.MapCarrier{"traceparent": traceParent})
	}
	if s.w.tracingOff {
		// A no-op span would carry the same trace context: starting one
		// cost a tenth of the worker's CPU (its allocations, and the stack
		// its call grows).
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx, span := s.w.tracer.Start(ctx, s.spanName, consumer)
	if span.IsRecording() {
		span.SetAttributes(
			semconv.MessagingSystemKey.String("baton"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(job.Queue),
			semconv.MessagingMessageID(strconv.FormatInt(job.ID, 10)),
			attribute.Int("baton.job.attempt", job.Attempt),
		)
	}
	return ctx, span
}

// endSpan records the run's outcome on its span.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
