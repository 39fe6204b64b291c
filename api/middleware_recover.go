package api

import (
	"fmt"
	"net/http"
	"runtime/debug"
)

// recoverPanics turns a handler panic into a logged 500 problem instead of a
// dropped connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler { //nolint:errorlint // a sentinel panic value, not a wrapped error
				panic(rec)
			}
			s.log.Error("panic", "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			writeProblem(w, r, s.log, fmt.Errorf("panic: %v", rec))
		}()
		next.ServeHTTP(w, r)
	})
}
