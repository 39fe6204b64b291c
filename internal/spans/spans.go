// Package spans holds what Baton's spans share across packages: the
// attributes OpenTelemetry's messaging conventions give a submit.
package spans

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Send are the attributes of the producer span "send QUEUE" of a submit of
// n jobs, by OpenTelemetry's messaging conventions.
func Send(queue string, n int) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.MessagingSystemKey.String("baton"), semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"), semconv.MessagingDestinationName(queue)}
	if n > 1 {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(n))
	}
	return attrs
}
