package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authenticate requires a bearer token from Config.Tokens, when there are any.
// Tokens are compared as SHA-256 digests in constant time, all of them every
// time, so neither a token's length nor its position leaks through timing.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if len(s.cfg.Tokens) == 0 {
		return next
	}
	digests := make([][32]byte, len(s.cfg.Tokens))
	for i, t := range s.cfg.Tokens {
		digests[i] = sha256.Sum256([]byte(t))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(given))
		match := 0
		for _, d := range digests {
			match |= subtle.ConstantTimeCompare(sum[:], d[:])
		}
		if !ok || given == "" || match != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
			writeProblem(w, r, s.log, problem(http.StatusUnauthorized, "unauthenticated", "Authorization",
				"a valid bearer token is required"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
