package api_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// PATCH /v1/queues/{queue} sets a queue's retention as a JSON merge patch:
// a duration or "forever" sets it, null goes back to the replicas' default,
// and a field left out stays as it is.
func TestPatchQueueRetention(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	retention := func(r response) map[string]any {
		t.Helper()
		require.Equal(t, 200, r.status, "%s", r.body)
		return r.json(t)["retention"].(map[string]any)
	}
	r := c.do("PATCH", "/v1/queues/fresh/jobs-not-a-route", `{}`)
	require.Equal(t, 404, r.status)

	got := retention(c.do("PATCH", "/v1/queues/fresh", `{"retain_succeeded": "48h", "retain_dead": "forever"}`))
	require.Equal(t, map[string]any{"succeeded": "48h0m0s", "dead": "forever", "canceled": nil}, got, "the queue is created")
	got = retention(c.do("PATCH", "/v1/queues/fresh", `{"retain_dead": null, "retain_canceled": "30m"}`))
	require.Equal(t, map[string]any{"succeeded": "48h0m0s", "dead": nil, "canceled": "30m0s"}, got)
	got = retention(c.do("PATCH", "/v1/queues/fresh", `{}`))
	require.Equal(t, map[string]any{"succeeded": "48h0m0s", "dead": nil, "canceled": "30m0s"}, got, "an empty patch changes nothing")

	r = c.do("GET", "/v1/queues", "")
	require.Equal(t, 200, r.status)
	queues := r.json(t)["queues"].([]any)
	require.Len(t, queues, 1)
	require.Equal(t, map[string]any{"succeeded": "48h0m0s", "dead": nil, "canceled": "30m0s"}, queues[0].(map[string]any)["retention"])
	require.Nil(t, queues[0].(map[string]any)["global_concurrency"])
}

// PATCH sets a queue's global concurrency (creating the queue), null takes
// it back, and the queue list shows it.
func TestPatchQueueGlobalConcurrency(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	limit := func(r response) any {
		t.Helper()
		require.Equal(t, 200, r.status, "%s", r.body)
		return r.json(t)["global_concurrency"]
	}
	require.EqualValues(t, 5, limit(c.do("PATCH", "/v1/queues/limited", `{"global_concurrency": 5}`)), "the queue is created")
	require.EqualValues(t, 5, limit(c.do("PATCH", "/v1/queues/limited", `{"retain_dead": "1h"}`)), "left out, it stays")
	r := c.do("GET", "/v1/queues", "")
	require.EqualValues(t, 5, r.json(t)["queues"].([]any)[0].(map[string]any)["global_concurrency"])
	require.Nil(t, limit(c.do("PATCH", "/v1/queues/limited", `{"global_concurrency": null}`)))
}

// PATCH sets a queue's rate (creating the queue), shown as it is written;
// null takes it back.
func TestPatchQueueRateLimit(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	rate := func(r response) any {
		t.Helper()
		require.Equal(t, 200, r.status, "%s", r.body)
		return r.json(t)["rate_limit"]
	}
	require.Equal(t, "20/s", rate(c.do("PATCH", "/v1/queues/paced", `{"rate_limit": "20/second"}`)), "the queue is created")
	require.Equal(t, "20/s", rate(c.do("PATCH", "/v1/queues/paced", `{"max_backlog": 10}`)), "left out, it stays")
	require.Equal(t, "600/m", rate(c.do("PATCH", "/v1/queues/paced", `{"rate_limit": "600/m"}`)))
	r := c.do("GET", "/v1/queues", "")
	require.Equal(t, "600/m", r.json(t)["queues"].([]any)[0].(map[string]any)["rate_limit"])
	require.Nil(t, rate(c.do("PATCH", "/v1/queues/paced", `{"rate_limit": null}`)))
}

// PATCH /v1/queues/{queue}/groups/{group} sets a group's weight (creating
// the queue); null puts back the default, 1. A group may hold any
// character but control characters, escaped in the path.
func TestPatchGroupWeight(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	weight := func(r response) map[string]any {
		t.Helper()
		require.Equal(t, 200, r.status, "%s", r.body)
		return r.json(t)
	}
	require.Equal(t, map[string]any{"queue": "shared", "group": "acme/eu", "weight": 3.0},
		weight(c.do("PATCH", "/v1/queues/shared/groups/acme%2Feu", `{"weight": 3}`)))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.queues WHERE name = 'shared'"), "the queue is created")
	require.Equal(t, 3, count(t, pool, "SELECT weight FROM baton.queue_groups WHERE queue = 'shared' AND group_key = 'acme/eu'"))
	require.Equal(t, 1.0, weight(c.do("PATCH", "/v1/queues/shared/groups/acme%2Feu", `{"weight": null}`))["weight"])
	require.Equal(t, 0, count(t, pool, "SELECT count(*) FROM baton.queue_groups WHERE weight IS NOT NULL"))
}

// GET /v1/queues pages through the queues in name order, and a pause or a
// resume of a queue that does not exist is a 404 that creates nothing.
// Before, a pause of any name made a queue: 5,000 of them made a 1.3 MB
// /v1/queues.
func TestQueuesArePagedAndAPauseMakesNoQueue(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	for _, q := range []string{"qa", "qb", "qc", "qd", "qe"} {
		require.Equal(t, 201, c.do("POST", "/v1/queues/"+q+"/jobs", `{"payload": 1}`).status)
	}
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3)
		path := "/v1/queues?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := c.do("GET", path, "")
		require.Equal(t, 200, r.status, "%s", r.body)
		var page struct {
			Queues []struct {
				Queue string `json:"queue"`
			} `json:"queues"`
			NextCursor *string `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &page))
		for _, q := range page.Queues {
			names = append(names, q.Queue)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	require.Equal(t, []string{"qa", "qb", "qc", "qd", "qe"}, names)

	before := count(t, pool, "SELECT count(*) FROM baton.queues")
	for _, action := range []string{"pause", "resume"} {
		r := c.do("POST", "/v1/queues/no-such-queue/"+action, "")
		require.Equal(t, 404, r.status, "%s", r.body)
		require.Contains(t, r.json(t)["detail"], `queue "no-such-queue" not found`)
	}
	require.Equal(t, before, count(t, pool, "SELECT count(*) FROM baton.queues"))
	require.Equal(t, 200, c.do("POST", "/v1/queues/qa/pause", "").status)
	require.Equal(t, 400, c.do("GET", "/v1/queues?cursor=nonsense", "").status)
	require.Equal(t, 422, c.do("GET", "/v1/queues?after=qa", "").status)
}

// A submit that would take a queue past its max_backlog is 429 queue_full,
// with Retry-After, and inserts nothing: a batch is all or nothing.
func TestAFullQueueRefusesSubmitsWith429(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	r := c.do("PATCH", "/v1/queues/mail", `{"max_backlog": 2}`)
	require.Equal(t, 200, r.status, "%s", r.body)
	require.EqualValues(t, 2, r.json(t)["max_backlog"])
	for range 2 {
		require.Equal(t, 201, c.do("POST", "/v1/queues/mail/jobs", `{"payload": 1}`).status)
	}
	for _, req := range [][2]string{{"/v1/queues/mail/jobs", `{"payload": 3}`}, {"/v1/queues/mail/jobs/batch", `{"jobs": [{"payload": 3}]}`}} {
		r = c.do("POST", req[0], req[1])
		require.Equal(t, 429, r.status, "%s", r.body)
		require.Equal(t, "1", r.header.Get("Retry-After"))
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
		p := r.json(t)
		require.Equal(t, "queue_full", p["code"])
		require.Contains(t, p["detail"], "queue mail is full: 2 jobs waiting, at most 2")
	}
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM baton.jobs").Scan(&n))
	require.Equal(t, 2, n, "nothing was inserted")

	r = c.do("GET", "/v1/queues", "")
	require.EqualValues(t, 2, r.json(t)["queues"].([]any)[0].(map[string]any)["max_backlog"])
	r = c.do("PATCH", "/v1/queues/mail", `{"max_backlog": null}`)
	require.Nil(t, r.json(t)["max_backlog"])
	require.Equal(t, 201, c.do("POST", "/v1/queues/mail/jobs", `{"payload": 3}`).status, "no limit: accepted again")
}
