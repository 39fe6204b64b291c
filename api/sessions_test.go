package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/maintenance"
)

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// post sends a form and returns the response's status and Location.
func post(t *testing.T, c *http.Client, u string, form url.Values, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// get fetches u with cookies and returns the status and Location.
func get(t *testing.T, u string, cookies ...*http.Cookie) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	require.NoError(t, err)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirect.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// After login, and from the forms' back field, only a path of this site is
// followed: anything a browser could read as another site goes to "/".
func TestRedirectsStayOnTheSite(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	submitJSON(t, pool, "dash-back", `{}`)
	for next, want := range map[string]string{
		"/\t/evil.example/":             "/",
		"/\n/evil.example/":             "/",
		"/\\evil.example":               "/",
		"/a\\..\\..\\\\evil.example":    "/",
		"//evil.example/":               "/",
		"https://evil.example/":         "/",
		"javascript:alert(1)":           "/",
		"evil.example":                  "/",
		"/\x7f/evil.example":            "/",
		"":                              "/",
		"/queues/dash-back?state=dead":  "/queues/dash-back?state=dead",
		"/jobs/1":                       "/jobs/1",
		"/%2F%2Fevil.example":           "/%2F%2Fevil.example", // a path here, escaped
		"/queues/dash-back#frag":        "/queues/dash-back#frag",
		"/queues/dash-back?next=//evil": "/queues/dash-back?next=//evil",
	} {
		resp, _ := post(t, noRedirect, srv.URL+"/login", url.Values{"token": {dashToken}, "next": {next}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%q", next)
		require.Equal(t, want, resp.Header.Get("Location"), "next=%q", next)

		cookies := resp.Cookies()
		resp, _ = post(t, noRedirect, srv.URL+"/queues/dash-back/pause", url.Values{"back": {next}}, cookies...)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%q", next)
		require.Equal(t, want, resp.Header.Get("Location"), "back=%q", next)
	}
}

// A session is checked by the server on every page: it ends after 12 hours
// (database time), at logout (a copy of the cookie stops working too), and
// when its token is removed; ended sessions are pruned by maintenance.
// Before, the cookie was an HMAC of a constant: it never expired on the
// server and still worked after logout.
func TestDashboardSessionsEnd(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	ctx := context.Background()
	login := func() []*http.Cookie {
		t.Helper()
		resp, _ := post(t, noRedirect, srv.URL+"/login", url.Values{"token": {dashToken}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Len(t, resp.Cookies(), 1)
		c := resp.Cookies()[0]
		require.Equal(t, 12*60*60, c.MaxAge)
		require.True(t, c.HttpOnly)
		require.Equal(t, http.SameSiteLaxMode, c.SameSite)
		return resp.Cookies()
	}
	signedIn := func(cookies []*http.Cookie) bool {
		t.Helper()
		status, loc := get(t, srv.URL+"/", cookies...)
		if status == http.StatusSeeOther {
			require.Equal(t, "/login?next=%2F", loc)
			return false
		}
		require.Equal(t, http.StatusOK, status)
		return true
	}

	a, b := login(), login()
	require.NotEqual(t, a[0].Value, b[0].Value, "each sign-in is its own session")
	require.True(t, signedIn(a))
	require.True(t, signedIn(b))
	require.Equal(t, 2, count(t, pool, "SELECT count(*) FROM baton.dashboard_sessions"))

	// Logout ends a's session on the server: replaying its cookie fails.
	resp, _ := post(t, noRedirect, srv.URL+"/logout", nil, a...)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/login", resp.Header.Get("Location"))
	require.False(t, signedIn(a))
	require.True(t, signedIn(b), "other sessions go on")

	// Twelve hours later (moved in the database, whose clock decides).
	_, err := pool.Exec(ctx, "UPDATE baton.dashboard_sessions SET expires_at = now() - interval '1 second'")
	require.NoError(t, err)
	require.False(t, signedIn(b))
	maintenance.Pass(ctx, pool, slog.New(slog.DiscardHandler))
	require.Zero(t, count(t, pool, "SELECT count(*) FROM baton.dashboard_sessions"), "maintenance prunes ended sessions")

	// A session dies with its token: the same database served with only
	// another token refuses it.
	c := login()
	other := httptest.NewServer(api.New(pool, api.Config{Tokens: []string{"another-token-for-tests"}, Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(other.Close)
	status, _ := get(t, other.URL+"/", c...)
	require.Equal(t, http.StatusSeeOther, status)
	require.True(t, signedIn(c))

	// Cookies the server did not make are not sessions.
	for _, v := range []string{"", "x", strings.Repeat("A", 43), c[0].Value + "A"} {
		require.False(t, signedIn([]*http.Cookie{{Name: "baton_session", Value: v}}), "%q", v)
	}
}

// Wrong tokens are limited per client address: ten, then 429 with
// Retry-After for each further wrong one from that address, while the right
// token still gets in (from it too) and other addresses go on. Requests
// without a token are not guesses. Before, the address was locked out: the
// right token got 429 as well.
func TestWrongTokensAreLimitedPerAddress(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	h := api.New(pool, api.Config{Tokens: []string{dashToken}, Logger: slog.New(slog.DiscardHandler)}).Handler()
	send := func(addr, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/queues", nil)
		req.RemoteAddr = addr
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for range 20 {
		require.Equal(t, 401, send("192.0.2.1:1000", "").Code, "no token is not counted")
	}
	for i := range 10 {
		require.Equal(t, 401, send("192.0.2.1:1000", fmt.Sprintf("Bearer guess-%d", i)).Code)
	}
	for _, auth := range []string{"Bearer guess-10", "Bearer guess-11"} {
		rec := send("192.0.2.1:2000", auth)
		require.Equal(t, 429, rec.Code, "%q", auth)
		require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
		require.Contains(t, rec.Body.String(), `"code":"too_many_failures"`)
		s, err := strconv.Atoi(rec.Header().Get("Retry-After"))
		require.NoError(t, err)
		require.True(t, s >= 1 && s <= 6, "Retry-After %d", s)
	}
	require.Equal(t, 200, send("192.0.2.1:2000", "Bearer "+dashToken).Code, "the right token is never locked out")
	require.Equal(t, 401, send("192.0.2.1:2000", "").Code)
	require.Equal(t, 200, send("192.0.2.2:1000", "Bearer "+dashToken).Code, "another address")

	// IPv6 clients are counted by /64.
	for i := range 10 {
		require.Equal(t, 401, send(fmt.Sprintf("[2001:db8::%x]:1000", i), "Bearer wrong").Code)
	}
	require.Equal(t, 429, send("[2001:db8::ffff]:1000", "Bearer wrong").Code)
	require.Equal(t, 401, send("[2001:db8:0:1::1]:1000", "Bearer wrong").Code)
	require.Equal(t, 200, send("[2001:db8::ffff]:1000", "Bearer "+dashToken).Code)

	// The dashboard's sign-in shares the count.
	form := url.Values{"token": {"guess-12"}}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "192.0.2.1:3000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, 429, rec.Code)
	require.NotEmpty(t, rec.Header().Get("Retry-After"))
	require.Contains(t, rec.Body.String(), "Too many failed sign-ins")
}

// Failed sign-ins alone reach the limit too.
func TestFailedSignInsAreLimited(t *testing.T) {
	t.Parallel()
	srv, _, _ := dashboardServer(t)
	for i := range 10 {
		resp, body := post(t, noRedirect, srv.URL+"/login", url.Values{"token": {fmt.Sprintf("guess-%d", i)}})
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Contains(t, body, "not accepted")
	}
	resp, body := post(t, noRedirect, srv.URL+"/login", url.Values{"token": {"guess-10"}})
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, body, "Too many failed sign-ins")
	require.Empty(t, resp.Cookies())
	resp, _ = post(t, noRedirect, srv.URL+"/login", url.Values{"token": {dashToken}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the right token still signs in")
	require.Len(t, resp.Cookies(), 1)
}

// Behind a trusted proxy (BATON_TRUSTED_PROXIES), wrong tokens count against
// the client the proxy forwarded for, and a session cookie is Secure when
// the proxy says the client came over https. From anyone else those headers
// are ignored. Before, after 10 wrong tokens from one client behind a load
// balancer, the right token got 429 from every client, and the cookie was
// never Secure behind a proxy that ends TLS.
func TestATrustedProxyIsBelievedAndNoOneElse(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	proxies, err := api.ParseTrustedProxies("10.0.0.0/8, 192.0.2.50")
	require.NoError(t, err)
	h := api.New(pool, api.Config{Tokens: []string{dashToken}, Logger: slog.New(slog.DiscardHandler), TrustedProxies: proxies}).Handler()
	send := func(method, path, peer string, header ...string) *httptest.ResponseRecorder {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(url.Values{"token": {dashToken}}.Encode())
		}
		req := httptest.NewRequest(method, path, body)
		req.RemoteAddr = peer
		if method == "POST" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for i := 0; i < len(header); i += 2 {
			req.Header.Add(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// Ten wrong tokens from one client behind the load balancer...
	for i := range 10 {
		require.Equal(t, 401, send("GET", "/v1/queues", "10.1.2.3:5000",
			"Authorization", fmt.Sprintf("Bearer guess-%d", i), "X-Forwarded-For", "203.0.113.9, 10.9.9.9").Code)
	}
	require.Equal(t, 429, send("GET", "/v1/queues", "10.1.2.3:5000", "Authorization", "Bearer guess-10",
		"X-Forwarded-For", "203.0.113.9").Code, "that client is limited")
	require.Equal(t, 401, send("GET", "/v1/queues", "10.1.2.3:5000", "Authorization", "Bearer guess-10",
		"X-Forwarded-For", "198.51.100.7").Code, "another client behind the same proxy is not")
	require.Equal(t, 200, send("GET", "/v1/queues", "10.1.2.3:5000", "Authorization", "Bearer "+dashToken,
		"X-Forwarded-For", "198.51.100.7").Code)
	require.Equal(t, 200, send("GET", "/v1/queues", "192.0.2.50:5000", "Authorization", "Bearer "+dashToken,
		"Forwarded", `for="[2001:db8::1]:4711";proto=https, for=192.0.2.50`).Code, "RFC 7239's form")

	// An untrusted peer's forwarding headers change nothing: it is counted
	// under its own address whatever it claims.
	for i := range 10 {
		require.Equal(t, 401, send("GET", "/v1/queues", "198.51.100.1:5000",
			"Authorization", fmt.Sprintf("Bearer guess-%d", i), "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", 100+i)).Code)
	}
	require.Equal(t, 429, send("GET", "/v1/queues", "198.51.100.1:5000", "Authorization", "Bearer guess-10",
		"X-Forwarded-For", "203.0.113.200").Code)

	secure := func(rec *httptest.ResponseRecorder) bool {
		require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
		cookies := rec.Result().Cookies()
		require.Len(t, cookies, 1)
		return cookies[0].Secure
	}
	require.True(t, secure(send("POST", "/login", "10.1.2.3:5000", "X-Forwarded-Proto", "https", "X-Forwarded-For", "198.51.100.8")))
	require.False(t, secure(send("POST", "/login", "10.1.2.3:5000", "X-Forwarded-Proto", "http", "X-Forwarded-For", "198.51.100.8")))
	require.False(t, secure(send("POST", "/login", "198.51.100.2:5000", "X-Forwarded-Proto", "https")), "not from a trusted proxy")

	_, err = api.ParseTrustedProxies("10.0.0.0/8, nonsense")
	require.ErrorContains(t, err, `"nonsense" is neither a CIDR`)
}
