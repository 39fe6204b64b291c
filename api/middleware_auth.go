package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authenticate requires a bearer token from Config.Tokens, when there are any.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if len(s.cfg.Tokens) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !s.validToken(given) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
			writeProblem(w, r, s.log, problem(http.StatusUnauthorized, "unauthenticated", "Authorization",
				"a valid bearer token is required"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// validToken tells whether given is one of Config.Tokens. Tokens are compared
// as SHA-256 digests in constant time, all of them every time, so neither a
// token's length nor its position leaks through timing.
func (s *Server) validToken(given string) bool {
	sum := sha256.Sum256([]byte(given))
	match := 0
	for _, d := range s.tokenDigests {
		match |= subtle.ConstantTimeCompare(sum[:], d[:])
	}
	return given != "" && match == 1
}
