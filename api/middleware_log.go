package api

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/trace"
)

// accessLog logs one line per request: no bodies, no headers, so neither
// payloads nor tokens reach the log. The trace id, when the request has
// one, finds its spans.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		w.Header().Set("X-Request-Id", middleware.GetReqID(r.Context()))
		next.ServeHTTP(ww, r)
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", ww.Status(),
			"bytes", ww.BytesWritten(), "duration_ms", time.Since(start).Milliseconds(),
			"request_id", middleware.GetReqID(r.Context()), "remote", r.RemoteAddr}
		if client, _ := s.client(r); client.IsValid() && client != peerAddr(r.RemoteAddr) {
			attrs = append(attrs, "client", client.String()) // forwarded for, by a trusted proxy
		}
		if sc := trace.SpanContextFromContext(r.Context()); sc.HasTraceID() {
			attrs = append(attrs, "trace_id", sc.TraceID().String())
		}
		s.log.Info("request", attrs...)
	})
}
