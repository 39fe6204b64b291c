package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/internal/workertest"
	"github.com/baton-run/baton/worker"
)

// After a run through the API and a worker in the same process, /metrics
// shows what happened, from both the process and the database.
func TestMetricsAfterARun(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	handler := worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		if strings.Contains(string(j.Payload), "fail") {
			return nil, worker.Permanent(fmt.Errorf("no"))
		}
		return j.Payload, nil
	})
	metrics := prometheus.NewRegistry() // the worker's, served beside the API's
	srv := httptest.NewServer(api.New(pool, api.Config{
		Logger: slog.New(slog.DiscardHandler), Metrics: []prometheus.Gatherer{metrics},
	}).Handler())
	t.Cleanup(srv.Close)

	for _, body := range []string{`{"payload":{"n":1}}`, `{"payload":{"n":2}}`, `{"payload":"fail"}`} {
		resp, err := http.Post(srv.URL+"/v1/queues/metrics-a/jobs", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode)
	}
	workertest.Start(t, pool, "stages:\n  - queue: metrics-a\n    handler: {go: h}\n    next: metrics-b\n  - queue: metrics-b\n    handler: {go: h}\n",
		worker.Config{Logger: slog.New(slog.DiscardHandler), Handlers: worker.Handlers{"h": handler}, Metrics: metrics})

	// Wait for every outcome: nothing orders the failing job's failure
	// before the other two jobs' second stage, nor a counter's increment
	// before the next stage sees the commit it follows.
	var m string
	require.Eventually(t, func() bool {
		m = scrape(t, srv.URL)
		return value(m, `baton_jobs{queue="metrics-b",state="succeeded"}`) == 2 &&
			value(m, `baton_jobs{queue="metrics-a",state="dead"}`) == 1 &&
			value(m, `baton_jobs_finished_total{outcome="succeeded",queue="metrics-a"}`) == 2 &&
			value(m, `baton_jobs_finished_total{outcome="dead",queue="metrics-a"}`) == 1 &&
			value(m, `baton_pickup_latency_seconds_count{queue="metrics-b"}`) == 2
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, 2.0, value(m, `baton_jobs{queue="metrics-a",state="succeeded"}`))
	require.Equal(t, 1.0, value(m, `baton_jobs{queue="metrics-a",state="dead"}`))
	require.Equal(t, 0.0, value(m, `baton_jobs{queue="metrics-a",state="available"}`))
	require.Equal(t, 3.0, value(m, `baton_api_jobs_submitted_total{queue="metrics-a"}`))
	require.Equal(t, 3.0, value(m, `baton_jobs_claimed_total{queue="metrics-a"}`))
	require.Equal(t, 2.0, value(m, `baton_jobs_finished_total{outcome="succeeded",queue="metrics-a"}`))
	require.Equal(t, 1.0, value(m, `baton_jobs_finished_total{outcome="dead",queue="metrics-a"}`))
	require.Equal(t, 3.0, value(m, `baton_handler_duration_seconds_count{queue="metrics-a"}`))
	require.Equal(t, 2.0, value(m, `baton_pickup_latency_seconds_count{queue="metrics-b"}`))
	// Direct hand-offs (both stages in one worker) are measured too.
	require.Positive(t, value(m, `baton_pickup_latency_seconds_sum{queue="metrics-b"}`))
	require.Positive(t, value(m, `baton_claim_duration_seconds_count{queue="metrics-a"}`))
	require.Positive(t, value(m, `baton_claim_duration_seconds_sum{queue="metrics-a"}`))
	require.Positive(t, value(m, `baton_completion_duration_seconds_count{queue="metrics-a"}`))
	require.Equal(t, 0.0, value(m, `baton_queue_paused{queue="metrics-a"}`))
	require.NotContains(t, m, `baton_queue_global_concurrency{queue="metrics-a"}`, "no limit of its own")

	// A queue's limits are gauges beside its running and waiting jobs.
	req, err := http.NewRequest(http.MethodPatch, srv.URL+"/v1/queues/metrics-a", strings.NewReader(`{"global_concurrency": 4, "max_backlog": 500}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	m = scrape(t, srv.URL)
	require.Equal(t, 4.0, value(m, `baton_queue_global_concurrency{queue="metrics-a"}`))
	require.Equal(t, 500.0, value(m, `baton_queue_max_backlog{queue="metrics-a"}`))
	require.GreaterOrEqual(t, value(m, `baton_queue_oldest_available_seconds{queue="metrics-a"}`), 0.0)
	require.Equal(t, 1.0, value(m, `baton_database_up`))
	require.GreaterOrEqual(t, value(m, `baton_table_dead_tuples{table="jobs"}`), 0.0)
	require.Positive(t, value(m, `baton_table_bytes{table="jobs"}`))
	require.Positive(t, value(m, `baton_table_index_bytes{table="jobs"}`))
	require.GreaterOrEqual(t, value(m, `baton_database_oldest_transaction_seconds`), 0.0)
	require.Contains(t, m, "go_goroutines ")

	// The database going away is a gauge, not a failed scrape.
	pool.Close()
	m = scrape(t, srv.URL)
	require.Equal(t, 0.0, value(m, `baton_database_up`))
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// value finds one sample in the text exposition format; -1 if absent.
func value(metrics, series string) float64 {
	for line := range strings.Lines(metrics) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// A scraper that asks for OpenMetrics gets it; others get the text format.
func TestMetricsSpeakOpenMetricsWhenAsked(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(api.New(dbtest.New(t), api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	for accept, want := range map[string]string{
		"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5": "application/openmetrics-text",
		"": "text/plain",
	} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		require.NoError(t, err)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), want), "Accept %q: %s", accept, resp.Header.Get("Content-Type"))
		require.Equal(t, want == "application/openmetrics-text", strings.HasSuffix(string(body), "# EOF\n"))
	}
}

// Every request is counted and timed under its route pattern, so ids in
// paths make no new series.
func TestMetricsCountRequestsByRoute(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(api.New(dbtest.New(t), api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(srv.Close)
	for _, path := range []string{"/v1/jobs/1", "/v1/jobs/2", "/v1/jobs/3", "/no/such/page"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	}
	resp, err := http.Post(srv.URL+"/v1/queues/a/jobs", "application/json", strings.NewReader(`{"payload":1}`))
	require.NoError(t, err)
	resp.Body.Close()
	m := scrape(t, srv.URL)
	require.Equal(t, 3.0, value(m, `baton_api_requests_total{code="404",method="get",route="/v1/jobs/{id}"}`))
	require.Equal(t, 1.0, value(m, `baton_api_requests_total{code="201",method="post",route="/v1/queues/{queue}/jobs"}`))
	require.Equal(t, 3.0, value(m, `baton_api_request_duration_seconds_count{code="404",method="get",route="/v1/jobs/{id}"}`))
	require.Equal(t, 1.0, value(m, `baton_api_requests_in_flight`), "the scrape itself")
	require.NotContains(t, m, `route="/v1/jobs/1"`)
	require.NotContains(t, m, `/no/such/page`)
}

// A caller making up queue names cannot grow /metrics without bound: past
// MetricsQueues, queues are summed as queue="_other".
func TestMetricsBoundTheQueueLabel(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(api.New(dbtest.New(t), api.Config{Logger: slog.New(slog.DiscardHandler), MetricsQueues: 2}).Handler())
	t.Cleanup(srv.Close)
	for q, n := range []int{1, 1, 3, 2, 1} { // submitted in this order: q0, q1, …
		for range n {
			resp, err := http.Post(fmt.Sprintf("%s/v1/queues/q%d/jobs", srv.URL, q), "application/json", strings.NewReader(`{"payload":1}`))
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusCreated, resp.StatusCode)
		}
	}
	m := scrape(t, srv.URL)
	// The gauges name the busiest queues.
	require.Equal(t, 3.0, value(m, `baton_jobs{queue="q2",state="available"}`))
	require.Equal(t, 2.0, value(m, `baton_jobs{queue="q3",state="available"}`))
	require.Equal(t, 3.0, value(m, `baton_jobs{queue="_other",state="available"}`))
	// This server's counter named the first queues it counted, until the
	// scrape: now it names the busiest, whoever came first, and the series
	// of the others are dropped.
	require.Equal(t, 6.0, value(m, `baton_api_jobs_submitted_total{queue="_other"}`))
	for _, q := range []int{4, 2} {
		resp, err := http.Post(fmt.Sprintf("%s/v1/queues/q%d/jobs", srv.URL, q), "application/json", strings.NewReader(`{"payload":1}`))
		require.NoError(t, err)
		resp.Body.Close()
	}
	m = scrape(t, srv.URL)
	require.Equal(t, 1.0, value(m, `baton_api_jobs_submitted_total{queue="q2"}`))
	require.Equal(t, 7.0, value(m, `baton_api_jobs_submitted_total{queue="_other"}`))
	for _, q := range []string{"q0", "q1", "q4"} {
		require.NotContains(t, m, `queue="`+q+`"`, "q0 and q1 came first, but are not among the busiest")
	}
}

// /metrics shows each group's waiting and running jobs, naming the busiest
// groups (as many as queues) and summing a queue's rest as group="_other";
// and a queue's own rate, per second.
func TestMetricsBoundTheGroupLabel(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	srv := httptest.NewServer(api.New(pool, api.Config{Logger: slog.New(slog.DiscardHandler), MetricsQueues: 2}).Handler())
	t.Cleanup(srv.Close)
	var jobs []store.NewJob
	for g, n := range []int{1, 4, 3, 2} {
		for range n {
			jobs = append(jobs, store.NewJob{Queue: "render", Group: fmt.Sprintf("customer-%d", g)})
		}
	}
	_, err := store.Submit(ctx, pool, jobs...)
	require.NoError(t, err)
	rows, err := store.New(pool).JobClaim(ctx, store.JobClaimParams{QueueName: "render", MaxJobs: 2, LeaseMs: 30000, WorkerID: "w", MaxAttempts: 5})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	rate, period := int32(600), int32(60000)
	_, err = store.New(pool).QueueSet(ctx, store.QueueSetParams{Name: "render", RateCount: &rate, RatePeriodMs: &period, SetRate: true})
	require.NoError(t, err)

	m := scrape(t, srv.URL)
	require.Equal(t, 10.0, value(m, `baton_queue_rate_limit_per_second{queue="render"}`))
	require.Equal(t, 4.0, value(m, `baton_group_waiting_jobs{group="customer-1",queue="render"}`)+value(m, `baton_group_running_jobs{group="customer-1",queue="render"}`))
	require.Equal(t, 3.0, value(m, `baton_group_waiting_jobs{group="customer-2",queue="render"}`)+value(m, `baton_group_running_jobs{group="customer-2",queue="render"}`))
	require.Equal(t, 3.0, value(m, `baton_group_waiting_jobs{group="_other",queue="render"}`)+value(m, `baton_group_running_jobs{group="_other",queue="render"}`),
		"customer-3's 2 and customer-0's 1")
	require.NotContains(t, m, `group="customer-0"`)
	require.NotContains(t, m, `group="customer-3"`)
}
