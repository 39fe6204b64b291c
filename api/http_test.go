package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

func send(t *testing.T, method, u string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// HEAD works wherever GET does: same status and headers, no body.
func TestHeadWorksWhereverGetDoes(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	srv := httptest.NewServer(api.New(pool, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	ids, err := store.Submit(context.Background(), pool, store.NewJob{Queue: "a"})
	require.NoError(t, err)
	for _, path := range []string{
		"/healthz", "/readyz", "/metrics", "/openapi.yaml", "/v1/queues", "/v1/jobs", fmt.Sprintf("/v1/jobs/%d", ids[0]),
		"/", "/queues/a", fmt.Sprintf("/jobs/%d", ids[0]), "/login", "/static/style.css", "/v1/jobs/99999", "/nope",
	} {
		g, gbody := send(t, "GET", srv.URL+path)
		h, hbody := send(t, "HEAD", srv.URL+path)
		require.Equal(t, g.StatusCode, h.StatusCode, path)
		require.NotEqual(t, http.StatusMethodNotAllowed, h.StatusCode, path)
		require.Equal(t, g.Header.Get("Content-Type"), h.Header.Get("Content-Type"), path)
		require.NotEmpty(t, gbody, path)
		require.Empty(t, hbody, path)
	}
	r, _ := send(t, "PUT", srv.URL+"/v1/jobs")
	require.Equal(t, "GET, HEAD", r.Header.Get("Allow"))
}

// Every response says nosniff, so no browser reads a JSON payload (or any
// other body) as HTML or script.
func TestEveryResponseSaysNoSniff(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/healthz", ""}, {"GET", "/metrics", ""}, {"GET", "/openapi.yaml", ""}, {"GET", "/v1/queues", ""},
		{"GET", "/v1/jobs/abc", ""}, {"GET", "/v1/nope", ""}, {"PUT", "/v1/jobs", ""}, {"POST", "/v1/queues/a/jobs", `{"payload":{}}`},
		{"POST", "/v1/queues/a/jobs", `{`}, {"GET", "/login", ""}, {"GET", "/static/htmx.min.js", ""}, {"GET", "/", ""},
	} {
		resp := c.do(r.method, r.path, r.body)
		require.Equal(t, "nosniff", resp.header.Get("X-Content-Type-Options"), "%s %s", r.method, r.path)
	}
	resp := c.do("GET", "/v1/queues", "", "Authorization", "Bearer wrong")
	require.Equal(t, "nosniff", resp.header.Get("X-Content-Type-Options"))
}

// An incoming X-Request-Id is echoed (and logged) only when it is short and
// plain; anything else is replaced by one of the server's.
func TestRequestIDsAreEchoedOnlyWhenPlain(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(api.New(nil, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		sent []string
		echo bool
	}{
		{[]string{"req-42"}, true},
		{[]string{"4bf92f3577b34da6a3ce929d0e0e4736"}, true},
		{[]string{"host/abc-000001"}, true},
		{[]string{strings.Repeat("a", 128)}, true},
		{[]string{strings.Repeat("a", 129)}, false},
		{[]string{"<script>alert(1)</script>"}, false},
		{[]string{"a b"}, false},
		{[]string{`"quoted"`}, false},
		{[]string{"ünïcode"}, false},
		{[]string{"one", "two"}, false},
	} {
		var header []string
		for _, v := range tt.sent {
			header = append(header, "X-Request-Id", v)
		}
		resp, body := send(t, "GET", srv.URL+"/v1/nope", header...)
		got := resp.Header.Get("X-Request-Id")
		require.NotEmpty(t, got)
		if tt.echo {
			require.Equal(t, tt.sent[0], got)
		} else {
			require.NotEqual(t, tt.sent[0], got, "%q", tt.sent)
			require.NotContains(t, body, tt.sent[0])
		}
		require.Contains(t, body, `"request_id":"`+got+`"`)
	}
}

// The dashboard's static files are served; the folder is not listed.
func TestStaticFilesAreNotListed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(api.New(nil, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	for _, path := range []string{"/static/", "/static/.", "/static//", "/static/./", "/static/%2e/", "/static/../static/"} {
		resp, body := send(t, "GET", srv.URL+path)
		require.NotEqual(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
		require.NotContains(t, body, "htmx.min.js", path)
	}
	resp, _ := send(t, "GET", srv.URL+"/static/style.css")
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
