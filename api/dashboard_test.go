package api_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/testenv"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

const dashToken = "dashboard-test-token"

// dashboardServer serves the API with a token, and a worker for queue
// "dash-ingest" (handing off to "dash-publish") whose handler fails for good
// until healed.
func dashboardServer(t *testing.T) (*httptest.Server, *pgxpool.Pool, *atomic.Bool) {
	t.Helper()
	pool := dbtest.New(t)
	var healed atomic.Bool
	image := worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		if strings.Contains(string(j.Payload), "broken") && !healed.Load() {
			return nil, worker.Permanent(errors.New("the image is broken"))
		}
		return j.Payload, nil
	})
	workertest.Start(t, pool, `
poll_interval: 100ms
stages:
  - queue: dash-ingest
    handler: {go: image}
    next: dash-publish
  - queue: dash-publish
    handler: {go: image}
`, worker.Config{Logger: slog.New(slog.DiscardHandler), Handlers: worker.Handlers{"image": image}})

	srv := httptest.NewServer(api.New(pool, api.Config{Tokens: []string{dashToken}, Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	return srv, pool, &healed
}

func submitJSON(t *testing.T, pool *pgxpool.Pool, queue, payload string) int64 {
	t.Helper()
	ids, err := store.Submit(context.Background(), pool, store.NewJob{Queue: queue, Payload: json.RawMessage(payload)})
	require.NoError(t, err)
	return ids[0]
}

func waitJobState(t *testing.T, pool *pgxpool.Pool, id int64, state store.JobState) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := store.Status(context.Background(), pool, id)
		require.NoError(t, err)
		return st.State == state
	}, 20*time.Second, 20*time.Millisecond)
}

// The dashboard in a real browser: log in with a token, see the queues with
// their counts, open a dead job, see its payload, press retry, and watch the
// page show it succeed.
func TestDashboardInABrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	srv, pool, healed := dashboardServer(t)
	for n := range 3 {
		submitJSON(t, pool, "dash-ingest", fmt.Sprintf(`{"image": "cat-%d.png"}`, n))
	}
	dead := submitJSON(t, pool, "dash-ingest", `{"image": "broken.png"}`)
	waitJobState(t, pool, dead, "dead")
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM baton.jobs WHERE queue = 'dash-publish' AND state = 'succeeded'").Scan(&n))
		return n == 3
	}, 20*time.Second, 20*time.Millisecond)

	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return strings.TrimSpace(s)
	}

	// The dashboard asks for a token first, and a wrong one is refused.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "wrong-token"),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.CSS(".flash.bad")),
	))
	require.Contains(t, text(".flash.bad"), "not accepted")

	// The right one shows the queues with their counts.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), dashToken),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("queue-table")),
	))
	require.Equal(t, "1", text(`tr[data-queue="dash-ingest"] td[data-state="dead"]`))
	require.Equal(t, "3", text(`tr[data-queue="dash-ingest"] td[data-state="succeeded"]`))
	require.Equal(t, "3", text(`tr[data-queue="dash-publish"] td[data-state="succeeded"]`))
	// The last hour's charts, drawn by the server: every queue's here.
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("chart-throughput")), chromedp.WaitVisible(chromedp.ID("chart-latency"))))
	require.Equal(t, "6", text("#charts-done"), "3 ingest and 3 publish attempts succeeded")
	require.NotEqual(t, "0", text("#charts-failed"), "the broken image failed")
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart-throughput rect.done").length`))
	require.NoError(t, err)
	require.Equal(t, 60, bars, "a column a minute")
	if os.Getenv("UPDATE_SCREENSHOTS") != "" {
		screenshot(t, ctx, "../docs/dashboard.png")
	}

	// Into the queue, filter to dead jobs, and open the one there.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr[data-queue="dash-ingest"] a`)),
		chromedp.WaitVisible(chromedp.ID("job-table")),
		chromedp.WaitVisible(chromedp.ID("chart-throughput")),
	))
	require.Equal(t, "3", text("#charts-done"), "this queue's own")
	if os.Getenv("UPDATE_SCREENSHOTS") != "" {
		screenshot(t, ctx, "../docs/dashboard-queue.png")
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`.tabs a[href$="state=dead"]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-job="%d"]`, dead))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-job="%d"] a`, dead))),
		chromedp.WaitVisible(chromedp.ID("payload")),
	))
	require.Contains(t, text("#payload"), `"image": "broken.png"`)
	require.Equal(t, "dead", text("#job-state"))
	require.Contains(t, text("pre.error"), "the image is broken")

	// Fix the cause, press retry, and the page (refreshing itself) shows the
	// job succeed and hand off to the next stage.
	healed.Store(true)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("retry")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	))
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#job-state").innerText.trim() === "succeeded" &&
		document.querySelectorAll(".lineage .node").length === 2`, chromedp.WithPollingTimeout(30*time.Second)))
	require.NoError(t, err)
	waitJobState(t, pool, dead, "succeeded")
	if os.Getenv("UPDATE_SCREENSHOTS") != "" {
		screenshot(t, ctx, "../docs/dashboard-job.png")
	}
}

// newBrowser starts Debian's Chromium, headless, for one test (skipped
// without it, except under CI). It stops when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	chromium := testenv.LookPath(t, "the browser test", "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, png, 0o644))
}

// Without a session the dashboard's pages and actions send the browser to
// the login page, and a cross-site form post is refused even with one: none
// of them changes a job.
func TestDashboardNeedsALoginAndRefusesCrossSitePosts(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	id := submitJSON(t, pool, "dash-idle", `{}`)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, req := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/queues/dash-idle"}, {"GET", fmt.Sprintf("/jobs/%d", id)},
		{"POST", fmt.Sprintf("/jobs/%d/cancel", id)}, {"POST", "/queues/dash-idle/pause"},
	} {
		r, err := http.NewRequest(req.method, srv.URL+req.path, nil)
		require.NoError(t, err)
		resp, err := noRedirect.Do(r)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, req.path)
		require.Equal(t, "/login?next="+url.QueryEscape(req.path), resp.Header.Get("Location"))
	}

	// Log in, then try a cross-site post with the session cookie.
	resp, err := noRedirect.PostForm(srv.URL+"/login", url.Values{"token": {dashToken}, "next": {"//evil.example/"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/", resp.Header.Get("Location"), "never redirected off the site")
	cookies := resp.Cookies()
	require.Len(t, cookies, 1)
	require.True(t, cookies[0].HttpOnly)
	require.NotContains(t, cookies[0].Value, dashToken)

	r, err := http.NewRequest("POST", fmt.Sprintf("%s/jobs/%d/cancel", srv.URL, id), nil)
	require.NoError(t, err)
	r.AddCookie(cookies[0])
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = noRedirect.Do(r)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, string(body))

	// The same post from the dashboard itself works.
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = noRedirect.Do(r)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	waitJobState(t, pool, id, "canceled")
}

// loggedIn returns a client holding a dashboard session.
func loggedIn(t *testing.T, srv *httptest.Server) *http.Client {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(srv.URL+"/login", url.Values{"token": {dashToken}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	c.Jar = &cookieJar{cookies: resp.Cookies()}
	return c
}

// cookieJar holds the session cookie for every request to the test server.
type cookieJar struct{ cookies []*http.Cookie }

func (j *cookieJar) SetCookies(*url.URL, []*http.Cookie) {}
func (j *cookieJar) Cookies(*url.URL) []*http.Cookie     { return j.cookies }

func page(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// A queue's page shows 25 jobs, newest first, and pages back through the rest.
func TestDashboardPagesThroughAQueue(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	var ids []int64
	for range 30 {
		ids = append(ids, submitJSON(t, pool, "dash-paged", `{}`))
	}
	c := loggedIn(t, srv)
	status, body := page(t, c, srv.URL+"/queues/dash-paged")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 25, strings.Count(body, `<tr data-job=`))
	require.Contains(t, body, fmt.Sprintf(`data-job="%d"`, ids[29]), "newest first")
	require.NotContains(t, body, fmt.Sprintf(`data-job="%d"`, ids[4]))
	older := fmt.Sprintf("before=%d", ids[5])
	require.Contains(t, body, older)

	status, body = page(t, c, srv.URL+"/queues/dash-paged?state=&"+older)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 5, strings.Count(body, `<tr data-job=`))
	require.Contains(t, body, fmt.Sprintf(`data-job="%d"`, ids[0]))
	require.NotContains(t, body, "Older →")

	status, body = page(t, c, srv.URL+"/queues/dash-paged?state=available")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 25, strings.Count(body, `<tr data-job=`))
	status, body = page(t, c, srv.URL+"/queues/dash-paged?state=dead")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "No dead jobs")
}

// A queue's page shows its limits and their use, and its groups with the
// most due jobs (20 at most), with their weights.
func TestDashboardShowsFlowControl(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	ctx := context.Background()
	q := store.New(pool)
	five, backlog, rate, period, three := int32(5), int32(1000), int32(20), int32(1000), int32(3)
	_, err := q.QueueSet(ctx, store.QueueSetParams{Name: "dash-flow", GlobalConcurrency: &five, SetGlobalConcurrency: true,
		MaxBacklog: &backlog, SetMaxBacklog: true, RateCount: &rate, RatePeriodMs: &period, SetRate: true})
	require.NoError(t, err)
	_, err = q.QueueGroupWeight(ctx, store.QueueGroupWeightParams{Queue: "dash-flow", GroupKey: "customer-42", Weight: &three})
	require.NoError(t, err)
	var jobs []store.NewJob
	for i := range 30 {
		for range i + 1 {
			jobs = append(jobs, store.NewJob{Queue: "dash-flow", Group: fmt.Sprintf("customer-%d", 20+i)})
		}
	}
	_, err = store.Submit(ctx, pool, jobs...)
	require.NoError(t, err)

	status, body := page(t, loggedIn(t, srv), srv.URL+"/queues/dash-flow")
	require.Equal(t, http.StatusOK, status)
	panel := regexp.MustCompile(`(?s)<section class="panel facts" id="flow-control">.*?</section>`).FindString(body)
	require.NotEmpty(t, panel, body)
	require.Contains(t, panel, "of at most 5")
	require.Contains(t, panel, "465 <span class=\"muted\">of at most 1000")
	require.Contains(t, panel, "20/s")
	require.Equal(t, 20, strings.Count(panel, "<tr data-group="), "the 20 groups with the most due jobs")
	require.Regexp(t, `<tr data-group="customer-49"><td>customer-49</td><td class="n">30</td>`, panel)
	require.Regexp(t, `<tr data-group="customer-42">.*<td class="n">3</td></tr>`, panel, "its weight")
	require.NotContains(t, panel, `data-group="customer-20"`)
}

// The home page shows how large each Baton table and its indexes are, and
// how many dead rows wait for vacuum.
func TestDashboardShowsTableHealth(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	submitJSON(t, pool, "dash-tables", `{}`)
	status, body := page(t, loggedIn(t, srv), srv.URL+"/")
	require.Equal(t, http.StatusOK, status)
	row := regexp.MustCompile(`(?s)<tr data-table="jobs">.*?</tr>`).FindString(body)
	require.NotEmpty(t, row, body)
	bytes := regexp.MustCompile(`data-bytes="(\d+)"`).FindAllStringSubmatch(row, -1)
	require.Len(t, bytes, 2, row)
	for _, b := range bytes {
		require.NotEqual(t, "0", b[1], "table and index sizes: %s", row)
	}
	require.Regexp(t, `\d+ (B|kB|MB)`, row)
	require.Contains(t, body, `<tr data-table="job_events">`)
}

// Bad addresses get a clear page with a 4xx status, never a 5xx.
func TestDashboardBadInputIsAClearPage(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	submitJSON(t, pool, "dash-bad", `{}`)
	c := loggedIn(t, srv)
	for _, tt := range []struct {
		path   string
		status int
		says   string
	}{
		{"/queues/Not%20A%20Queue", http.StatusUnprocessableEntity, "queue name"},
		{"/queues/no-such-queue", http.StatusNotFound, "no queue named"},
		{"/queues/dash-bad?state=exploded", http.StatusBadRequest, "not a job state"},
		{"/queues/dash-bad?before=yesterday", http.StatusBadRequest, "before must be a job id"},
		{"/jobs/abc", http.StatusBadRequest, "positive 64-bit integer"},
		{"/jobs/99999999", http.StatusNotFound, "There is no job 99999999"},
		{"/jobs/-1", http.StatusBadRequest, "positive 64-bit integer"},
	} {
		status, body := page(t, c, srv.URL+tt.path)
		require.Equal(t, tt.status, status, tt.path)
		require.Contains(t, body, tt.says, tt.path)
		require.Contains(t, body, "Back to the queues", tt.path)
	}
	// Retrying a job that is not dead is refused with the reason.
	r, err := http.NewRequest("POST", srv.URL+"/jobs/1/retry", nil)
	require.NoError(t, err)
	resp, err := c.Do(r)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusConflict, resp.StatusCode, string(body))
}

// A queue's page sets its retention: a duration, forever, or empty for the
// default; anything else is a clear 422 page that changes nothing.
func TestDashboardSetsAQueuesRetention(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	submitJSON(t, pool, "dash-keep", `{}`)
	c := loggedIn(t, srv)
	save := func(form url.Values) (int, string) {
		t.Helper()
		resp, err := c.PostForm(srv.URL+"/queues/dash-keep/retention", form)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	status, _ := save(url.Values{"succeeded": {"48h"}, "dead": {"forever"}, "canceled": {""}, "back": {"/queues/dash-keep"}})
	require.Equal(t, http.StatusSeeOther, status)
	var s, d, cn *int64
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT retain_succeeded_ms, retain_dead_ms, retain_canceled_ms FROM baton.queues WHERE name = 'dash-keep'").Scan(&s, &d, &cn))
	require.Equal(t, [3]any{int64(48 * 3600 * 1000), int64(-1), (*int64)(nil)}, [3]any{*s, *d, cn})
	_, body := page(t, c, srv.URL+"/queues/dash-keep")
	require.Contains(t, body, `name="succeeded" value="48h0m0s"`)
	require.Contains(t, body, `name="dead" value="forever"`)
	require.Contains(t, body, `name="canceled" value=""`)

	status, body = save(url.Values{"succeeded": {"soon"}})
	require.Equal(t, http.StatusUnprocessableEntity, status)
	require.Contains(t, body, "is not a retention")
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT retain_succeeded_ms FROM baton.queues WHERE name = 'dash-keep'").Scan(&s))
	require.Equal(t, int64(48*3600*1000), *s, "unchanged")
}

// A job whose parent retention pruned still shows where it came from.
func TestDashboardShowsAPrunedParent(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	ctx := context.Background()
	parent := submitJSON(t, pool, "dash-origin", `{}`)
	var child int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO baton.jobs (queue, state, payload, parent_id, parent_seq)
		VALUES ('dash-after', 'available', '{}', $1, 0) RETURNING id`, parent).Scan(&child))
	c := loggedIn(t, srv)
	_, body := page(t, c, fmt.Sprintf("%s/jobs/%d", srv.URL, child))
	require.Contains(t, body, fmt.Sprintf(`<a href="/jobs/%d">job #%d</a>`, parent, parent))
	_, err := pool.Exec(ctx, "DELETE FROM baton.jobs WHERE id = $1", parent) // as retention would
	require.NoError(t, err)
	status, body := page(t, c, fmt.Sprintf("%s/jobs/%d", srv.URL, child))
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, fmt.Sprintf(`job #%d <span class="muted">(pruned)</span>`, parent))
}

// A job's history shows how long each attempt's handler ran.
func TestDashboardShowsEachAttemptsRunTime(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	id := submitJSON(t, pool, "dash-timed", `{}`)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `UPDATE baton.jobs SET state = 'succeeded', attempts = 1, lease_token = 1,
		started_at = now(), finished_at = now() WHERE id = $1`, id)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO baton.job_events (job_id, from_state, to_state, attempt, lease_token, worker, claimed_at, due_at, run_us)
		VALUES ($1, 'running', 'succeeded', 1, 1, 'w1', now(), now(), 412345)`, id)
	require.NoError(t, err)
	_, body := page(t, loggedIn(t, srv), fmt.Sprintf("%s/jobs/%d", srv.URL, id))
	require.Contains(t, body, `<td class="n">412ms</td>`)
}

// The home page lists 100 queues at a time, with a link to the next: anyone
// may make up queue names, and 5,000 of them made a 4.6 MB page refreshed
// every 2 s. The totals still count every queue's jobs.
func TestDashboardPagesThroughTheQueues(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	for i := range 130 {
		submitJSON(t, pool, fmt.Sprintf("dash-q%03d", i), `{}`)
	}
	c := loggedIn(t, srv)
	status, body := page(t, c, srv.URL+"/")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 100, strings.Count(body, `<tr data-queue=`))
	require.Contains(t, body, `<div class="num">130</div><div class="label">waiting</div>`, "every queue's jobs")
	next := regexp.MustCompile(`id="next-queues" href="/\?after=([a-z0-9-]+)"`).FindStringSubmatch(body)
	require.NotNil(t, next, "a link to the next queues")
	require.Contains(t, body, `data-queue="`+next[1]+`"`, "the last queue of the page")
	status, body = page(t, c, srv.URL+"/?after="+next[1])
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 32, strings.Count(body, `<tr data-queue=`), "the rest: 130 and the worker's two, 100 a page")
	require.Contains(t, body, `data-queue="dash-q129"`)
	require.NotContains(t, body, "Next queues")
	require.Contains(t, body, `hx-get="/?after=`+next[1]+`"`, "the refresh keeps its page")
	status, _ = page(t, c, srv.URL+"/?after=Not%20A%20Queue")
	require.Equal(t, http.StatusBadRequest, status)
}

// The home page shows each periodic entry: its schedule, its last tick with
// the job it made, and its next tick.
func TestDashboardShowsPeriodicEntries(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	workertest.Start(t, pool, "periodic:\n  - {name: dash-beat, queue: dash-beats, schedule: '@every 1s', timezone: Europe/Berlin}\n",
		worker.Config{Logger: slog.New(slog.DiscardHandler)})
	c := loggedIn(t, srv)
	var body string
	require.Eventually(t, func() bool {
		var status int
		status, body = page(t, c, srv.URL+"/")
		return status == http.StatusOK && strings.Contains(body, `href="/jobs/`) && strings.Contains(body, `data-periodic="dash-beat"`)
	}, 10*time.Second, 50*time.Millisecond)
	row := regexp.MustCompile(`(?s)<tr data-periodic="dash-beat">.*?</tr>`).FindString(body)
	require.Contains(t, row, "@every 1s")
	require.Contains(t, row, "Europe/Berlin")
	require.Contains(t, row, `href="/queues/dash-beats"`)
	require.Regexp(t, `href="/jobs/\d+"`, row)
}

// The charts count the last hour of attempts from the history, a minute a
// column, for one queue or all, and draw well-formed SVG; an hour ago is
// not in them, and a bad queue name is a clear page.
func TestDashboardChartsCountTheLastHour(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	a := submitJSON(t, pool, "charted", `{}`)
	other := submitJSON(t, pool, "elsewhere", `{}`)
	_, err := pool.Exec(context.Background(), `INSERT INTO baton.job_events (job_id, at, from_state, to_state, attempt, lease_token, claimed_at, due_at, run_us)
		VALUES ($1, now() - interval '5 minutes', 'running', 'retrying', 1, 1, now() - interval '6 minutes', now() - interval '6 minutes 2 seconds', 400000),
		       ($1, now() - interval '2 minutes', 'running', 'succeeded', 2, 2, now() - interval '3 minutes', now() - interval '3 minutes', 1500000),
		       ($1, now() - interval '2 hours', 'running', 'succeeded', 1, 3, now() - interval '2 hours', now() - interval '2 hours', 1000),
		       ($2, now() - interval '1 minute', 'running', 'succeeded', 1, 4, now() - interval '1 minute', now() - interval '1 minute', 1000)`, a, other)
	require.NoError(t, err)
	client := loggedIn(t, srv)

	status, body := page(t, client, srv.URL+"/charts?queue=charted")
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `<span id="charts-done">1</span>`)
	require.Contains(t, body, `<span id="charts-failed">1</span>`)
	for _, id := range []string{"chart-throughput", "chart-latency"} {
		svg := regexp.MustCompile(`(?s)<svg id="` + id + `".*?</svg>`).FindString(body)
		require.NotEmpty(t, svg, body)
		d := xml.NewDecoder(strings.NewReader(svg))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			require.NoError(t, err, "well-formed: %s", svg)
		}
	}
	require.Equal(t, 60, strings.Count(body, `<rect class="done"`), "a column a minute")
	require.Contains(t, body, `>2s</text>`, "the longest p95 (a 2 s wait) sets the scale")

	_, body = page(t, client, srv.URL+"/charts")
	require.Contains(t, body, `<span id="charts-done">2</span>`, "every queue's")

	status, body = page(t, client, srv.URL+"/charts?queue=Not%20A%20Queue")
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "queue must be a queue name")
}
