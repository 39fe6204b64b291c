package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
)

// Behind a real reverse proxy (BATON_TRUSTED_PROXIES names it), each client
// is itself: its wrong tokens count against it alone, the access log names
// it, and a right token is never locked out, even from the client that
// guessed. Clients have addresses of their own (127.0.0.2, 127.0.0.3); the
// proxy reaches serve from 127.0.0.1. Before, the lockout counted the
// proxy's address: after 10 wrong tokens from anyone, everyone's right
// token got 429.
func TestBehindAProxyEachClientIsItself(t *testing.T) {
	t.Parallel()
	_, u := dbtest.NewWithURL(t)
	const token = "a-token-for-the-proxy-test"
	s := startServer(t, u, []string{"BATON_API_TOKENS=" + token, "BATON_TRUSTED_PROXIES=127.0.0.1/32"}, "serve")
	backend, err := url.Parse(s.base)
	require.NoError(t, err)
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(backend)) // appends X-Forwarded-For
	t.Cleanup(proxy.Close)

	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
	}
	get := func(c *http.Client, tok string) int {
		req, err := http.NewRequest(http.MethodGet, proxy.URL+"/v1/queues", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	a, b := from("127.0.0.2"), from("127.0.0.3")
	for range 10 {
		require.Equal(t, http.StatusUnauthorized, get(a, "a-wrong-token-guessed"))
	}
	require.Equal(t, http.StatusTooManyRequests, get(a, "a-wrong-token-guessed"), "the guessing client is throttled")
	require.Equal(t, http.StatusOK, get(a, token), "its right token still gets in")
	require.Equal(t, http.StatusUnauthorized, get(b, "a-wrong-token-guessed"), "another client counts on its own")
	require.Equal(t, http.StatusOK, get(b, token))
	require.Contains(t, s.stderr.String(), "client=127.0.0.2")
	require.Contains(t, s.stderr.String(), "client=127.0.0.3")
	require.True(t, strings.Contains(s.stderr.String(), "remote=127.0.0.1:"), "the proxy is the peer")
}
