package main

import (
	"cmp"
	"context"
	"os"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// setupTracing exports OpenTelemetry traces when the standard environment
// asks for it: OTEL_TRACES_EXPORTER (otlp, console or none), or an OTLP
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
// The contrib autoexport package reads the rest, OTEL_EXPORTER_OTLP_PROTOCOL
// (http/protobuf or grpc) among them. Otherwise tracing stays off and costs
// nothing: the provider returned is then a no-op one, which tells the API
// to skip its request spans. The returned stop flushes the spans still
// buffered.
func setupTracing(ctx context.Context) (_ trace.TracerProvider, stop func(), err error) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	exporter := os.Getenv("OTEL_TRACES_EXPORTER")
	if exporter == "none" || exporter == "" &&
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return noop.NewTracerProvider(), func() {}, nil
	}
	spans, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, nil, usagef("tracing: %v (OTEL_TRACES_EXPORTER=%q, OTEL_EXPORTER_OTLP_PROTOCOL=%q; want otlp, console or none, and http/protobuf or grpc)",
			err, exporter, os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cmp.Or(os.Getenv("OTEL_SERVICE_NAME"), "baton"))))
	if err != nil {
		return nil, nil, usagef("tracing: %v", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}, nil
}
