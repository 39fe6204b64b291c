package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/baton-run/baton/internal/store"
)

// The dashboard's sign-in: a token gets a session the server checks on every
// page, that ends after sessionTTL or at logout, and dies with its token.

const (
	sessionCookie = "baton_session"
	// sessionTTL is how long a dashboard session lasts (checked by the
	// server, in database time, not only by the cookie's Max-Age).
	sessionTTL = 12 * time.Hour
	// MinTokenLength is the shortest API token CheckTokens accepts.
	MinTokenLength = 16
)

// CheckTokens refuses API tokens too short to resist guessing.
func CheckTokens(tokens []string) error {
	for i, t := range tokens {
		if n := utf8.RuneCountInString(t); n < MinTokenLength {
			return fmt.Errorf("token %d of %d is %d characters; each must be at least %d (make one with: openssl rand -hex 32)",
				i+1, len(tokens), n, MinTokenLength)
		}
	}
	return nil
}

// tokenMAC binds a session id to the token it signed in with, without
// storing the token.
func tokenMAC(token string, id []byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write(id)
	return m.Sum(nil)
}

// sessionID reads the session cookie: 32 random bytes, base64url.
func sessionID(r *http.Request) ([]byte, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	id, err := base64.RawURLEncoding.DecodeString(c.Value)
	return id, err == nil && len(id) == 32
}

// validSession reports whether r carries a session that has not ended and
// was signed in with a token the server still accepts.
func (s *Server) validSession(r *http.Request) (bool, error) {
	id, ok := sessionID(r)
	if !ok {
		return false, nil
	}
	digest := sha256.Sum256(id)
	mac, err := store.New(s.pool).SessionGet(r.Context(), digest[:])
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, store.MapError(err)
	}
	for _, t := range s.cfg.Tokens {
		if hmac.Equal(mac, tokenMAC(t, id)) {
			return true, nil
		}
	}
	return false, nil
}

// requireSession sends visitors without a session to the login page when
// the API has tokens.
func (s *Server) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.cfg.Tokens) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		ok, err := s.validSession(r)
		switch {
		case err != nil:
			s.renderProblem(w, r, err)
			return
		case ok:
			next.ServeHTTP(w, r)
			return
		}
		to := "/login?next=" + url.QueryEscape(r.URL.RequestURI())
		if r.Header.Get("HX-Request") != "" {
			w.Header().Set("HX-Redirect", to)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
	})
}

// localPath keeps redirects on this site: an absolute path of this origin,
// else "/". Browsers drop tabs and newlines from a URL and read a backslash
// as a slash, so "/\t/evil.example" would take them to //evil.example:
// control characters and backslashes are refused anywhere.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login.html", map[string]any{"Title": "Sign in", "Next": localPath(r.URL.Query().Get("next"))})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	next := localPath(r.PostFormValue("next"))
	if len(s.cfg.Tokens) == 0 {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	form := map[string]any{"Title": "Sign in", "Next": next}
	token := r.PostFormValue("token")
	if !s.validToken(token) { // a right token always gets in (see authenticate)
		addr := s.clientAddr(r)
		if wait := s.failures.wait(addr); wait > 0 {
			w.Header().Set("Retry-After", retryAfter(wait))
			form["Error"] = fmt.Sprintf("Too many failed sign-ins from your address: try again in %s s.", retryAfter(wait))
			s.render(w, r, http.StatusTooManyRequests, "login.html", form)
			return
		}
		s.failures.fail(addr)
		form["Error"] = "That token is not accepted."
		s.render(w, r, http.StatusUnauthorized, "login.html", form)
		return
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id) // never fails (crypto/rand)
	digest := sha256.Sum256(id)
	err := store.New(s.pool).SessionCreate(r.Context(), store.SessionCreateParams{
		IDDigest: digest[:], TokenMac: tokenMAC(token, id), TtlMs: sessionTTL.Milliseconds(),
	})
	if err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	_, tls := s.client(r) // behind a trusted proxy that ends TLS, as it says
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString(id), Path: "/", HttpOnly: true,
		Secure: tls, SameSite: http.SameSiteLaxMode, MaxAge: int(sessionTTL.Seconds()),
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session for good: its row is deleted, so a copy of the
// cookie no longer works either.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if id, ok := sessionID(r); ok {
		digest := sha256.Sum256(id)
		if err := store.New(s.pool).SessionDelete(r.Context(), digest[:]); err != nil {
			s.renderProblem(w, r, store.MapError(err))
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
