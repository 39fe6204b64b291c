package api_test

import (
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
}
