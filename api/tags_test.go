package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// A submit keeps its tags, timeout and lease and shows them; GET /v1/jobs
// ?tag= pages through the jobs with a tag, newest first, within a queue and
// a state when asked.
func TestJobsWithTagsAndTheirOwnTimeoutAndLease(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	r := c.do("POST", "/v1/queues/mail/jobs", `{"payload": {}, "tags": ["customer-42", "ünïcode tag"], "timeout": "90s", "lease": "1m"}`)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	job := r.json(t)
	require.Equal(t, []any{"customer-42", "ünïcode tag"}, job["tags"])
	require.Equal(t, "1m30s", job["timeout"])
	require.Equal(t, "1m0s", job["lease"])
	got := c.do("GET", fmt.Sprintf("/v1/jobs/%v", job["id"]), "").json(t)
	require.Equal(t, job["tags"], got["tags"])
	require.Equal(t, "1m30s", got["timeout"])

	for i := range 4 {
		queue := []string{"mail", "sms"}[i%2]
		r := c.do("POST", "/v1/queues/"+queue+"/jobs", fmt.Sprintf(`{"payload": %d, "tags": ["customer-42"]}`, i))
		require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	}
	require.Equal(t, http.StatusCreated, c.do("POST", "/v1/queues/mail/jobs", `{"payload": "untagged"}`).status)

	type page struct {
		Jobs []struct {
			ID    int64
			Queue string
			Tags  []string
		}
		NextCursor *string `json:"next_cursor"`
	}
	list := func(query string) page {
		t.Helper()
		r := c.do("GET", "/v1/jobs?"+query, "")
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var p page
		require.NoError(t, json.Unmarshal(r.body, &p))
		return p
	}
	first := list("tag=customer-42&limit=3")
	require.Len(t, first.Jobs, 3)
	require.NotNil(t, first.NextCursor)
	require.Greater(t, first.Jobs[0].ID, first.Jobs[1].ID, "newest first")
	rest := list("tag=customer-42&limit=3&cursor=" + *first.NextCursor)
	require.Len(t, rest.Jobs, 2)
	require.Nil(t, rest.NextCursor)
	for _, j := range append(first.Jobs, rest.Jobs...) {
		require.Contains(t, j.Tags, "customer-42")
	}
	require.Len(t, list("tag=customer-42&queue=sms").Jobs, 2)
	require.Len(t, list("tag=customer-42&queue=mail&state=available").Jobs, 3)
	require.Empty(t, list("tag=nobody").Jobs)
}
