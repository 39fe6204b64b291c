package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/api"
)

// A run_at no reader could write back is refused; lower-case t and z,
// which RFC 3339 allows, are not.
func TestRunAtIsCheckedInUTC(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	r := c.do("POST", "/v1/queues/a/jobs", `{"payload":1,"run_at":"9999-12-31T23:59:59-01:00"}`)
	require.Equal(t, 422, r.status, "%s", r.body)
	require.Contains(t, r.json(t)["detail"], "10000-01-01T00:59:59Z")

	r = c.do("POST", "/v1/queues/a/jobs", `{"payload":1,"run_at":"2030-01-02t15:04:05.5z"}`)
	require.Equal(t, 201, r.status, "%s", r.body)
	require.Equal(t, "2030-01-02T15:04:05.5Z", r.json(t)["run_at"])
	r = c.do("POST", "/v1/queues/a/jobs", `{"payload":1,"run_at":"9999-12-31T23:59:59+01:00"}`)
	require.Equal(t, 201, r.status, "the last hour of 9999 in UTC: %s", r.body)
}

// Times only SQL run by hand can store (±infinity, years past 9999 or
// before 0) read as the nearest end of what RFC 3339 can write: every list
// and page stays readable, and no row takes a list down with it.
func TestTimesStoredByHandKeepEveryReaderWorking(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	ctx := context.Background()
	var ids []int64
	for range 5 {
		r := c.do("POST", "/v1/queues/hand/jobs", `{"payload":{}}`)
		require.Equal(t, 201, r.status)
		ids = append(ids, int64(r.json(t)["id"].(float64)))
	}
	for i, set := range []string{
		"run_at = 'infinity', state = 'scheduled'",
		"run_at = '-infinity'", // due since forever: the queue's oldest age
		"created_at = '12000-06-01', run_at = '10000-01-01T00:59:59Z', state = 'scheduled'",
		"state = 'succeeded', started_at = '4000-01-01 BC', finished_at = 'infinity', lease_expires_at = '-infinity'",
	} {
		_, err := pool.Exec(ctx, "UPDATE baton.jobs SET "+set+" WHERE id = $1", ids[i])
		require.NoError(t, err, set)
	}
	_, err := pool.Exec(ctx, `INSERT INTO baton.job_events (job_id, at, from_state, to_state, attempt, lease_token, error)
		VALUES ($1, 'infinity', 'available', 'available', 0, 0, 'by hand')`, ids[4])
	require.NoError(t, err)

	r := c.do("GET", "/v1/jobs?queue=hand", "")
	require.Equal(t, 200, r.status, "%s", r.body)
	var list struct {
		Jobs []map[string]any `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal(r.body, &list))
	require.Len(t, list.Jobs, 5, "one bad row takes no other row down")
	byID := map[int64]map[string]any{}
	for _, j := range list.Jobs {
		byID[int64(j["id"].(float64))] = j
	}
	require.Equal(t, "9999-12-31T23:59:59.999999Z", byID[ids[0]]["run_at"])
	require.Equal(t, "0000-01-01T00:00:00Z", byID[ids[1]]["run_at"])
	require.Equal(t, "9999-12-31T23:59:59.999999Z", byID[ids[2]]["created_at"])
	require.Equal(t, "0000-01-01T00:00:00Z", byID[ids[3]]["started_at"])
	require.Equal(t, "9999-12-31T23:59:59.999999Z", byID[ids[3]]["finished_at"])

	for _, id := range ids {
		r := c.do("GET", fmt.Sprintf("/v1/jobs/%d", id), "")
		require.Equal(t, 200, r.status, "job %d: %s", id, r.body)
		require.NotEmpty(t, r.json(t)["history"])
	}
	r = c.do("GET", "/v1/queues", "")
	require.Equal(t, 200, r.status, "%s", r.body)
	require.Contains(t, string(r.body), `"queue":"hand"`)
	r = c.do("GET", "/metrics", "")
	require.Equal(t, 200, r.status, "%s", r.body)

	// The dashboard's pages too.
	dash := httptest.NewServer(api.New(pool, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	t.Cleanup(dash.Close)
	pages := []string{"/", "/queues/hand", "/queues/hand?state=scheduled"}
	for _, id := range ids {
		pages = append(pages, fmt.Sprintf("/jobs/%d", id))
	}
	for _, p := range pages {
		resp, err := http.Get(dash.URL + p)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, p)
	}
}
