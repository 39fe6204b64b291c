package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

// seen records the status of every POST a server answered.
type seen struct {
	mu    sync.Mutex
	posts []string
}

func (s *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		h.ServeHTTP(ww, r)
		if r.Method == http.MethodPost {
			s.mu.Lock()
			s.posts = append(s.posts, fmt.Sprintf("%s %d", r.URL.Path, ww.Status()))
			s.mu.Unlock()
		}
	})
}

func (s *seen) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.posts
	s.posts = nil
	return p
}

// everything is what a cross-origin write could change.
func everything(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var out string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT
		(SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM baton.jobs) || ' | ' ||
		(SELECT string_agg(name || ':' || paused || ':' || coalesce(retain_succeeded_ms, 0), ',' ORDER BY name) FROM baton.queues) || ' | sessions:' ||
		(SELECT count(*) FROM baton.dashboard_sessions)`).Scan(&out))
	return out
}

// A page on another origin, in a real browser, tries every state-changing
// route of the API and the dashboard (no-cors fetches with the browser's
// cookies, the requests a form or a script can send without asking; a PATCH
// needs a CORS preflight the API never grants), with
// and without tokens, from another site (localhost) and from another port
// of the same host (same-site, so a SameSite=Lax cookie goes along). Every
// attempt reaches the server, is refused with 403, and changes nothing.
// Before, with no tokens (the loopback default), such a page canceled jobs
// and paused queues.
func TestNoCrossOriginWritesInABrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	for _, tokens := range [][]string{nil, {dashToken}} {
		pool := dbtest.New(t)
		ids, err := store.Submit(context.Background(), pool, store.NewJob{Queue: "victim"}, store.NewJob{Queue: "held"})
		require.NoError(t, err)
		open, closed := ids[0], ids[1]
		require.NoError(t, store.Cancel(context.Background(), pool, closed))
		_, err = store.New(pool).QueuePause(context.Background(), store.QueuePauseParams{Name: "held", Paused: true})
		require.NoError(t, err)

		var posts seen
		target := httptest.NewServer(posts.wrap(api.New(pool, api.Config{Tokens: tokens, Logger: slog.New(slog.DiscardHandler)}).Handler()))
		t.Cleanup(target.Close)
		if tokens != nil { // sign in, so the browser holds a session cookie
			require.NoError(t, chromedp.Do(ctx,
				chromedp.Navigate(target.URL+"/login"),
				chromedp.WaitVisible(chromedp.ID("token")),
				chromedp.SendKeys(chromedp.ID("token"), dashToken),
				chromedp.Click(chromedp.ID("sign-in")),
				chromedp.WaitVisible(chromedp.ID("queue-table")),
			))
			require.Equal(t, []string{"/login 303"}, posts.take())
		}
		before := everything(t, pool)

		form, text := "application/x-www-form-urlencoded", "text/plain"
		writes := [][3]string{
			{"/v1/queues/victim/jobs", text, `{"payload": 1}`},
			{"/v1/queues/victim/jobs/batch", text, `{"jobs": [{"payload": 1}]}`},
			{"/v1/queues/victim/pause", text, ""},

			{"/v1/queues/held/resume", text, ""},
			{fmt.Sprintf("/v1/jobs/%d/cancel", open), text, ""},
			{fmt.Sprintf("/v1/jobs/%d/retry", closed), text, ""},
			{"/queues/victim/pause", form, "back=/"},
			{"/queues/held/resume", form, "back=/"},
			{"/queues/victim/retention", form, "succeeded=1s"},
			{fmt.Sprintf("/jobs/%d/cancel", open), form, ""},
			{fmt.Sprintf("/jobs/%d/retry", closed), form, ""},
			{"/login", form, "token=" + dashToken + "&next=/"},
			{"/logout", form, ""},
		}
		script, err := json.Marshal(writes)
		require.NoError(t, err)
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<!doctype html><title>loading</title><script>
(async () => {
  for (const [path, type, body] of %s) {
    try {
      await fetch(%q + path, {method: "POST", mode: "no-cors", credentials: "include", headers: {"Content-Type": type}, body});
    } catch (e) {}
  }
  document.title = "done";
})();
</script>`, script, target.URL)
		}))
		t.Cleanup(evil.Close)
		_, port, _ := net.SplitHostPort(evil.Listener.Addr().String())
		for _, origin := range []string{"http://localhost:" + port, "http://127.0.0.1:" + port} {
			require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(origin+"/")), origin)
			_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.title === "done"`))
			require.NoError(t, err, origin)
			got := posts.take()
			require.Len(t, got, len(writes), "every attempt from %s reached the server: %v", origin, got)
			for _, p := range got {
				require.True(t, strings.HasSuffix(p, " 403"), "tokens %v, from %s: %s", tokens, origin, p)
			}
			require.Equal(t, before, everything(t, pool), "tokens %v, from %s", tokens, origin)
		}
	}
}

// The same refusal without a browser: what a browser sends from another
// origin is refused (403 problem) without tokens too; what a program sends
// (no Sec-Fetch-Site, no Origin) passes.
func TestCrossOriginWritesAreRefusedWithoutTokens(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	srv := httptest.NewServer(api.New(pool, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	ids, err := store.Submit(context.Background(), pool, store.NewJob{Queue: "a"})
	require.NoError(t, err)
	cancel := fmt.Sprintf("%s/v1/jobs/%d/cancel", srv.URL, ids[0])
	for _, h := range [][2]string{
		{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"},
		{"Origin", "http://evil.example"}, {"Origin", "http://127.0.0.1:1"},
	} {
		req, err := http.NewRequest("POST", cancel, nil)
		require.NoError(t, err)
		req.Header.Set(h[0], h[1])
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var p map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
		resp.Body.Close()
		require.Equal(t, 403, resp.StatusCode, "%s: %s", h[0], h[1])
		require.Equal(t, "cross_origin", p["code"])
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	}
	st, err := store.Status(context.Background(), pool, ids[0])
	require.NoError(t, err)
	require.Equal(t, store.JobState("available"), st.State)

	for _, h := range [][2]string{{"Sec-Fetch-Site", "same-origin"}, {"", ""}} {
		req, err := http.NewRequest("POST", srv.URL+"/v1/queues/a/pause", nil)
		require.NoError(t, err)
		if h[0] != "" {
			req.Header.Set(h[0], h[1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "%v", h)
	}
}
