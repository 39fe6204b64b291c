package api

import (
	"context"
	"net/http"
)

// deadline bounds each request's work, so a stalled database yields a 503
// (see toProblem) instead of a hung request.
func (s *Server) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
