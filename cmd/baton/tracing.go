package main

import (
	"cmp"
	"context"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// tracing is a process's OpenTelemetry set-up: where spans go, and how
// trace context travels in and out (OTEL_PROPAGATORS).
type tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	stop       func() // flushes the spans still buffered
}

// setupTracing exports OpenTelemetry traces when the standard environment
// asks for it: OTEL_TRACES_EXPORTER (otlp, console or none), or an OTLP
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
// The contrib autoexport package reads the rest, OTEL_EXPORTER_OTLP_PROTOCOL
// (http/protobuf or grpc) among them. Otherwise tracing stays off and costs
// nothing: the provider is then a no-op one, which tells the API to skip its
// request spans. OTEL_PROPAGATORS (tracecontext, baggage, b3, b3multi,
// jaeger, xray, ottrace or none; default tracecontext,baggage) names the
// propagators, through the contrib autoprop package, with tracing on or off.
func setupTracing(ctx context.Context) (tracing, error) {
	t := tracing{provider: noop.NewTracerProvider(), stop: func() {}}
	names := []string{"tracecontext", "baggage"}
	if v := os.Getenv("OTEL_PROPAGATORS"); strings.TrimSpace(v) != "" {
		names = strings.Split(v, ",")
		for i := range names {
			names[i] = strings.TrimSpace(names[i])
		}
	}
	var err error
	if t.propagator, err = autoprop.TextMapPropagator(names...); err != nil {
		return t, usagef("tracing: OTEL_PROPAGATORS=%q: %v", os.Getenv("OTEL_PROPAGATORS"), err)
	}
	otel.SetTextMapPropagator(t.propagator)
	exporter := os.Getenv("OTEL_TRACES_EXPORTER")
	if exporter == "none" || exporter == "" &&
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return t, nil
	}
	spans, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return t, usagef("tracing: %v (OTEL_TRACES_EXPORTER=%q, OTEL_EXPORTER_OTLP_PROTOCOL=%q; want otlp, console or none, and http/protobuf or grpc)",
			err, exporter, os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cmp.Or(os.Getenv("OTEL_SERVICE_NAME"), "baton"))))
	if err != nil {
		return t, usagef("tracing: %v", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	t.provider = tp
	t.stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}
	return t, nil
}

// fromEnvironment is the trace context a process was started in: the
// propagator's fields read from the environment, upper-cased with _ for -
// (TRACEPARENT, TRACESTATE, B3, …), as OpenTelemetry's environment carriers
// name them.
func (t tracing) fromEnvironment(ctx context.Context) context.Context {
	carrier := propagation.MapCarrier{}
	for _, field := range t.propagator.Fields() {
		if v := os.Getenv(strings.ToUpper(strings.ReplaceAll(field, "-", "_"))); v != "" {
			carrier[field] = v
		}
	}
	return t.propagator.Extract(ctx, carrier)
}
