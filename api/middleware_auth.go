package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authenticate requires a bearer token from Config.Tokens, when there are
// any. Wrong tokens are throttled, not addresses: a client whose address
// sent too many wrong tokens gets 429 for each further wrong one until its
// allowance refills (failureLimit), while a right token always gets in, so
// one misconfigured client behind a shared address (a NAT, a proxy that is
// not trusted) cannot lock the others out. A request with no token is not
// a guess and is not counted.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if len(s.cfg.Tokens) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, ok := bearerToken(r)
		if ok && s.validToken(given) {
			next.ServeHTTP(w, r)
			return
		}
		if ok {
			addr := s.clientAddr(r)
			if wait := s.failures.wait(addr); wait > 0 {
				p := problem(http.StatusTooManyRequests, "too_many_failures", "Authorization",
					"too many requests with a wrong token from your address; retry in %s s", retryAfter(wait))
				p.retryAfter = retryAfter(wait)
				writeProblem(w, r, s.log, p)
				return
			}
			s.failures.fail(addr)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
		writeProblem(w, r, s.log, problem(http.StatusUnauthorized, "unauthenticated", "Authorization",
			"a valid bearer token is required"))
	})
}

// bearerToken reads "Authorization: Bearer TOKEN". The scheme is
// case-insensitive (RFC 9110, section 11.1).
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimLeft(token, " ")
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
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
