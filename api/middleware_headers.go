package api

import (
	"net/http"
	"regexp"

	"github.com/go-chi/chi/v5/middleware"
)

// noSniff tells browsers to trust every response's Content-Type, so that a
// payload echoed in JSON is never run as a script or rendered as a page.
func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// plainRequestID is an X-Request-Id worth echoing: short, and of characters
// that carry no markup, quoting or line breaks into responses and logs.
var plainRequestID = regexp.MustCompile(`^[A-Za-z0-9._:/+=@-]{1,128}$`)

// dropOddRequestIDs removes an incoming X-Request-Id that is long or not
// plain (or sent twice), so that chi's RequestID makes a new one instead.
func dropOddRequestIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ids := r.Header.Values(middleware.RequestIDHeader); len(ids) > 1 || len(ids) == 1 && !plainRequestID.MatchString(ids[0]) {
			r.Header.Del(middleware.RequestIDHeader)
		}
		next.ServeHTTP(w, r)
	})
}
