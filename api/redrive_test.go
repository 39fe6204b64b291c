package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// POST /v1/queues/{queue}/retry counts on a dry run, then re-drives the
// dead jobs whose error matches, skipping the one whose unique key is held,
// and each re-driven job's history shows it.
func TestRetryAQueuesDeadJobs(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	_, err := pool.Exec(context.Background(), `INSERT INTO baton.queues (name) VALUES ('mail');
		INSERT INTO baton.jobs (queue, state, payload, finished_at, last_error, unique_key, unique_states) VALUES
			('mail', 'dead', '1', now(), 'SMTP timeout', NULL, NULL),
			('mail', 'dead', '2', now(), 'smtp TIMEOUT again', NULL, NULL),
			('mail', 'dead', '3', now(), 'bad address', NULL, NULL),
			('mail', 'dead', '4', now(), 'smtp timeout', 'k', '{available}'),
			('mail', 'available', '5', NULL, NULL, 'k', '{available}')`)
	require.NoError(t, err)

	r := c.do("POST", "/v1/queues/mail/retry", `{"state": "dead", "error_like": "Smtp Timeout", "dry_run": true}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.JSONEq(t, `{"matched": 3, "retried": 0, "skipped": 1, "complete": true}`, string(r.body))
	require.Equal(t, 4, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'dead'"), "a dry run changes nothing")

	r = c.do("POST", "/v1/queues/mail/retry", `{"error_like": "smtp timeout", "since": "1h"}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.JSONEq(t, `{"matched": 3, "retried": 2, "skipped": 1, "complete": true}`, string(r.body))
	require.Equal(t, 2, count(t, pool, "SELECT count(*) FROM baton.job_history WHERE from_state = 'dead' AND to_state = 'available'"))
	require.Equal(t, 2, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE state = 'dead'"), "bad address, and the job whose key is held")

	r = c.do("POST", "/v1/queues/mail/retry", `{}`)
	require.JSONEq(t, `{"matched": 2, "retried": 1, "skipped": 1, "complete": true}`, string(r.body), "no filter: every dead job")
}

// The queue page's "Retry all N dead" re-drives them, from the dashboard
// itself only, and says what it did.
func TestDashboardRetriesAllDeadJobs(t *testing.T) {
	t.Parallel()
	srv, pool, _ := dashboardServer(t)
	_, err := pool.Exec(context.Background(), `INSERT INTO baton.queues (name) VALUES ('dash-dead');
		INSERT INTO baton.jobs (queue, state, payload, finished_at, last_error)
		SELECT 'dash-dead', 'dead', '{}', now(), 'boom' FROM generate_series(1, 3)`)
	require.NoError(t, err)
	c := loggedIn(t, srv)
	status, body := page(t, c, srv.URL+"/queues/dash-dead")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "Retry all 3 dead")

	post := func(site string) *http.Response {
		r, err := http.NewRequest("POST", srv.URL+"/queues/dash-dead/retry", strings.NewReader(url.Values{}.Encode()))
		require.NoError(t, err)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", site)
		resp, err := c.Do(r)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, http.StatusForbidden, post("cross-site").StatusCode)
	require.Equal(t, 3, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'dash-dead' AND state = 'dead'"))

	resp := post("same-origin")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, 0, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'dash-dead' AND state = 'dead'"))
	status, body = page(t, c, srv.URL+resp.Header.Get("Location"))
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "Sent 3 dead jobs back to the queue.")
	require.NotContains(t, body, "Retry all", "none is dead now")
	require.Equal(t, 3, count(t, pool, fmt.Sprintf("SELECT count(*) FROM baton.job_history h JOIN baton.jobs j ON j.id = h.job_id WHERE j.queue = %s AND h.from_state = 'dead'", "'dash-dead'")))
}
