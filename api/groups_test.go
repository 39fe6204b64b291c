package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A submit keeps its group and shows it, one job or a batch; a job with
// none shows none.
func TestSubmitKeepsItsGroup(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	long := strings.Repeat("ü", 128) // 128 characters, 256 bytes
	r := c.do("POST", "/v1/queues/mail/jobs", fmt.Sprintf(`{"payload": {}, "group": %q}`, long))
	require.Equal(t, 201, r.status, "%s", r.body)
	job := r.json(t)
	require.Equal(t, long, job["group"])
	got := c.do("GET", fmt.Sprintf("/v1/jobs/%v", job["id"]), "").json(t)
	require.Equal(t, long, got["group"])

	r = c.do("POST", "/v1/queues/mail/jobs/batch", `{"jobs": [{"payload": 1, "group": "customer-42"}, {"payload": 2}]}`)
	require.Equal(t, 201, r.status, "%s", r.body)
	ids := r.json(t)["ids"].([]any)
	require.Equal(t, "customer-42", c.do("GET", fmt.Sprintf("/v1/jobs/%v", ids[0]), "").json(t)["group"])
	_, has := c.do("GET", fmt.Sprintf("/v1/jobs/%v", ids[1]), "").json(t)["group"]
	require.False(t, has, "no group, none shown")
}
