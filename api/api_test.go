package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const token = "t0ken-for-the-tests"

var spec = func() *openapi3.T {
	doc, err := openapi3.NewLoader().LoadFromFile("openapi.yaml")
	if err != nil {
		panic(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		panic(fmt.Sprintf("openapi.yaml is invalid: %v", err))
	}
	return doc
}()

type client struct {
	t      *testing.T
	srv    *httptest.Server
	router routers.Router
}

func setup(t *testing.T) (*client, *pgxpool.Pool) {
	t.Helper()
	pool := dbtest.New(t)
	return newClient(t, pool), pool
}

func newClient(t *testing.T, pool *pgxpool.Pool) *client {
	t.Helper()
	srv := httptest.NewServer(api.New(pool, api.Config{Tokens: []string{"other-token-for-tests", token}, Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	router, err := gorillamux.NewRouter(spec)
	require.NoError(t, err)
	return &client{t: t, srv: srv, router: router}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// do sends a request (authenticated unless headers set Authorization) and
// checks that the response matches the OpenAPI document.
func (c *client) do(method, path, body string, headers ...string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		switch k, v := headers[i], headers[i+1]; {
		case v == "":
			req.Header.Del(k)
		case k == "Idempotency-Key":
			req.Header.Add(k, v) // may repeat
		default:
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	c.validate(req, resp, b)
	return response{resp.StatusCode, resp.Header, b}
}

// validate checks a response against the document (routes it does not know,
// such as a 404 for an unknown path, are skipped).
func (c *client) validate(req *http.Request, resp *http.Response, body []byte) {
	c.t.Helper()
	u, _ := url.Parse(req.URL.String())
	u.Scheme, u.Host = "http", "127.0.0.1:8080"
	vreq := req.Clone(context.Background())
	vreq.URL = u
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		return
	}
	if resp.StatusCode >= 400 {
		require.Equal(c.t, "application/problem+json", resp.Header.Get("Content-Type"), "errors are problem+json: %s", body)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	require.NoError(c.t, openapi3filter.ValidateResponse(context.Background(), in),
		"%s %s -> %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
}

func count(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

func TestEveryRouteIsInTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	h := api.New(nil, api.Config{}).Handler()
	n := 0
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !isAPIRoute(route) {
			return nil // the HTML dashboard is not part of the REST API
		}
		n++
		item := spec.Paths.Find(route)
		require.NotNil(t, item, "route %s is not in openapi.yaml", route)
		require.NotNil(t, item.GetOperation(method), "%s %s is not in openapi.yaml", method, route)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, spec.Paths.Len(), len(uniquePaths(t, h)), "openapi.yaml documents routes the server lacks")
	require.Positive(t, n)
}

func isAPIRoute(route string) bool {
	return strings.HasPrefix(route, "/v1/") || slices.Contains([]string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"}, route)
}

func uniquePaths(t *testing.T, h http.Handler) map[string]bool {
	paths := map[string]bool{}
	require.NoError(t, chi.Walk(h.(chi.Routes), func(_, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if isAPIRoute(route) {
			paths[route] = true
		}
		return nil
	}))
	return paths
}

func TestSubmitGetListCancelRetry(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)

	r := c.do("POST", "/v1/queues/resize/jobs", `{"payload": {"image": "cat.png"}, "priority": 3, "max_attempts": 4, "delay": "1h"}`)
	require.Equal(t, 201, r.status, "%s", r.body)
	job := r.json(t)
	id := int64(job["id"].(float64))
	require.Equal(t, fmt.Sprintf("/v1/jobs/%d", id), r.header.Get("Location"))
	require.Equal(t, "scheduled", job["state"])
	require.Equal(t, map[string]any{"image": "cat.png"}, job["payload"])

	r = c.do("GET", fmt.Sprintf("/v1/jobs/%d", id), "")
	require.Equal(t, 200, r.status)
	require.Len(t, r.json(t)["history"], 1)

	r = c.do("POST", "/v1/queues/resize/jobs", `{"payload": null, "run_at": "2030-01-02T15:04:05+02:00"}`)
	require.Equal(t, 201, r.status, "%s", r.body)
	require.Equal(t, "2030-01-02T13:04:05Z", r.json(t)["run_at"])

	r = c.do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), "")
	require.Equal(t, 200, r.status, "%s", r.body)
	require.Equal(t, "canceled", r.json(t)["state"])
	r = c.do("POST", fmt.Sprintf("/v1/jobs/%d/cancel", id), "")
	require.Equal(t, 409, r.status)
	require.Equal(t, "conflict", r.json(t)["code"])
	r = c.do("POST", fmt.Sprintf("/v1/jobs/%d/retry", id), "")
	require.Equal(t, 200, r.status)
	require.Equal(t, "available", r.json(t)["state"])

	r = c.do("GET", "/v1/jobs?queue=resize&state=available", "")
	require.Equal(t, 200, r.status)
	list := r.json(t)
	require.Len(t, list["jobs"], 1)
	require.Nil(t, list["next_cursor"])

	r = c.do("GET", "/v1/queues", "")
	require.Equal(t, 200, r.status)
	q := r.json(t)["queues"].([]any)[0].(map[string]any)
	require.Equal(t, "resize", q["queue"])
	require.Equal(t, float64(2), q["depth"])

	r = c.do("POST", "/v1/queues/resize/pause", "")
	require.Equal(t, 200, r.status)
	require.Equal(t, true, r.json(t)["paused"])
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.queues WHERE name = 'resize' AND paused"))
	r = c.do("POST", "/v1/queues/resize/resume", "")
	require.Equal(t, false, r.json(t)["paused"])

	require.Equal(t, 200, c.do("GET", "/healthz", "", "Authorization", "").status)
	require.Equal(t, 200, c.do("GET", "/readyz", "", "Authorization", "").status)
	r = c.do("GET", "/openapi.yaml", "", "Authorization", "")
	require.Equal(t, 200, r.status)
	require.Contains(t, string(r.body), "openapi: 3.0.3")
}

func TestBatchSubmit(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	var jobs []string
	for i := range 500 {
		jobs = append(jobs, fmt.Sprintf(`{"payload": {"n": %d}}`, i))
	}
	body := `{"jobs": [` + strings.Join(jobs, ",") + `]}`
	r := c.do("POST", "/v1/queues/thumbs/jobs/batch", body, "Idempotency-Key", "batch-1")
	require.Equal(t, 201, r.status, "%s", r.body)
	res := r.json(t)
	require.Equal(t, float64(500), res["count"])
	ids := res["ids"].([]any)
	require.Len(t, ids, 500)
	require.Equal(t, 500, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'thumbs'"))
	var n float64
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT (payload->>'n')::float8 FROM baton.jobs WHERE id = $1", int64(ids[499].(float64))).Scan(&n))
	require.Equal(t, float64(499), n, "ids come back in request order")

	r = c.do("POST", "/v1/queues/thumbs/jobs/batch", body, "Idempotency-Key", "batch-1")
	require.Equal(t, 201, r.status)
	require.Equal(t, "true", r.header.Get("Idempotent-Replayed"))
	require.Equal(t, ids, r.json(t)["ids"])
	require.Equal(t, 500, count(t, pool, "SELECT count(*) FROM baton.jobs"))
}

func TestIdempotentSubmitReplaysAndConcurrentDuplicatesCreateOneJob(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	body := `{"payload": {"order": 7}}`
	first := c.do("POST", "/v1/queues/orders/jobs", body, "Idempotency-Key", `"order-7"`)
	require.Equal(t, 201, first.status)
	again := c.do("POST", "/v1/queues/orders/jobs", body, "Idempotency-Key", "order-7")
	require.Equal(t, 201, again.status)
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	require.Equal(t, first.json(t)["id"], again.json(t)["id"])
	other := c.do("POST", "/v1/queues/orders/jobs", `{"payload": {"order": 8}}`, "Idempotency-Key", "order-7")
	require.Equal(t, 422, other.status)
	require.Equal(t, "idempotency_key_reused", other.json(t)["code"])

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	ids := map[any]bool{}
	for range 20 {
		wg.Go(func() {
			r := c.do("POST", "/v1/queues/orders/jobs", `{"payload": {"order": 9}}`, "Idempotency-Key", "order-9")
			mu.Lock()
			defer mu.Unlock()
			statuses[r.status]++
			if r.status == 201 {
				ids[r.json(t)["id"]] = true
			} else {
				require.Equal(t, "idempotency_in_progress", r.json(t)["code"])
			}
		})
	}
	wg.Wait()
	require.Equal(t, 20, statuses[201]+statuses[409], "%v", statuses)
	require.Len(t, ids, 1)
	require.Equal(t, 2, count(t, pool, "SELECT count(*) FROM baton.jobs"))
}

func TestAuth(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	for _, auth := range []string{"", "Bearer wrong", "Bearer ", "Basic dDBrZW46", "Bearer" + token, "Bearer " + token + "x", token} {
		r := c.do("GET", "/v1/queues", "", "Authorization", auth)
		require.Equal(t, 401, r.status, "Authorization: %q", auth)
		require.Equal(t, `Bearer realm="baton"`, r.header.Get("WWW-Authenticate"))
		require.Equal(t, "unauthenticated", r.json(t)["code"])
	}
	// The scheme is case-insensitive (RFC 9110), and one or more spaces follow it.
	for _, auth := range []string{"Bearer other-token-for-tests", "bearer " + token, "BEARER " + token, "Bearer   " + token} {
		require.Equal(t, 200, c.do("GET", "/v1/queues", "", "Authorization", auth).status, auth)
	}
}

// A job that lost leases, and waits to run alone (crash isolation), says so
// in the API and on the dashboard.
func TestJobShowsItsLostLeases(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	r := c.do("POST", "/v1/queues/a/jobs", `{"payload": {}}`)
	require.Equal(t, 201, r.status)
	require.Equal(t, float64(0), r.json(t)["lost_leases"])
	require.Equal(t, false, r.json(t)["runs_alone"])
	id := int64(r.json(t)["id"].(float64))
	_, err := pool.Exec(context.Background(), "UPDATE baton.jobs SET lost_leases = 2, isolated = true WHERE id = $1", id)
	require.NoError(t, err)
	r = c.do("GET", fmt.Sprintf("/v1/jobs/%d", id), "")
	require.Equal(t, float64(2), r.json(t)["lost_leases"])
	require.Equal(t, true, r.json(t)["runs_alone"])

	dash := httptest.NewServer(api.New(pool, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(dash.Close)
	resp, err := http.Get(fmt.Sprintf("%s/jobs/%d", dash.URL, id))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), `<dd id="lost-leases">2 times</dd>`)
	require.Contains(t, string(body), `id="runs-alone"`)
}

func TestPaginationIsStableWhileJobsArrive(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	submit := func(n int) {
		var jobs []string
		for i := range n {
			jobs = append(jobs, fmt.Sprintf(`{"payload": %d}`, i))
		}
		require.Equal(t, 201, c.do("POST", "/v1/queues/a/jobs/batch", `{"jobs": [`+strings.Join(jobs, ",")+`]}`).status)
	}
	submit(25)
	var seen []float64
	cursor := ""
	for page := 0; ; page++ {
		path := "/v1/jobs?limit=10"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := c.do("GET", path, "")
		require.Equal(t, 200, r.status, "%s", r.body)
		body := r.json(t)
		for _, j := range body["jobs"].([]any) {
			seen = append(seen, j.(map[string]any)["id"].(float64))
		}
		submit(7) // newer jobs must not shift the pages being read
		next, ok := body["next_cursor"].(string)
		if !ok {
			break
		}
		cursor = next
	}
	require.Len(t, seen, 25)
	for i := 1; i < len(seen); i++ {
		require.Equal(t, seen[i-1]-1, seen[i], "newest first, no gaps or repeats")
	}
}

func TestDatabaseOutageIs503NotAHang(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	require.NoError(t, err)
	defer pool.Close()
	c := newClient(t, pool)
	r := c.do("POST", "/v1/queues/a/jobs", `{"payload": {}}`)
	require.Equal(t, 503, r.status, "%s", r.body)
	require.Equal(t, "unavailable", r.json(t)["code"])
	require.NotEmpty(t, r.header.Get("Retry-After"))
	r = c.do("GET", "/readyz", "")
	require.Equal(t, 503, r.status)
	require.NotEmpty(t, r.header.Get("Retry-After"))
}

func TestMain_specIsEmbedded(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	c, _ := setup(t)
	require.Equal(t, b, c.do("GET", "/openapi.yaml", "").body)
}

// A job's page shows its last 100 state changes and says how many earlier
// ones it leaves out: a cancel and retry storm gave one job 400, all in
// every GET.
func TestAJobShowsItsLastHundredStateChanges(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	r := c.do("POST", "/v1/queues/a/jobs", `{"payload": 1}`)
	require.Equal(t, 201, r.status)
	id := int64(r.json(t)["id"].(float64))
	ctx := context.Background()
	for range 60 {
		require.NoError(t, store.Cancel(ctx, pool, id))
		require.NoError(t, store.Retry(ctx, pool, id))
	}
	job := c.do("GET", fmt.Sprintf("/v1/jobs/%d", id), "").json(t)
	history := job["history"].([]any)
	require.Len(t, history, 100)
	require.Equal(t, 21.0, job["history_omitted"], "1 + 120 changes, the last 100 shown")
	require.Equal(t, "available", history[99].(map[string]any)["to"], "the latest last")
	r = c.do("POST", "/v1/queues/a/jobs", `{"payload": 2}`)
	require.NotContains(t, c.do("GET", fmt.Sprintf("/v1/jobs/%d", int64(r.json(t)["id"].(float64))), "").body, "history_omitted")
}
