package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Twenty submits racing with one unique_key make one job: one 201, nineteen
// 200s with Baton-Duplicate, every answer naming the same job.
func TestRacingSubmitsWithOneUniqueKeyMakeOneJob(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	type answer struct {
		status    int
		duplicate string
		id        int64
	}
	answers := make([]answer, 20)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			r := c.do("POST", "/v1/queues/orders/jobs", fmt.Sprintf(`{"payload": {"try": %d}, "unique_key": "order-42"}`, i))
			var job struct{ ID int64 }
			_ = json.Unmarshal([]byte(r.body), &job)
			answers[i] = answer{r.status, r.header.Get("Baton-Duplicate"), job.ID}
		})
	}
	wg.Wait()
	created, duplicates := 0, 0
	for _, a := range answers {
		switch a.status {
		case http.StatusCreated:
			created++
			require.Empty(t, a.duplicate)
		case http.StatusOK:
			duplicates++
			require.Equal(t, "true", a.duplicate)
		default:
			t.Fatalf("answer %d", a.status)
		}
		require.Equal(t, answers[0].id, a.id, "every answer names the one job")
	}
	require.Equal(t, 1, created)
	require.Equal(t, 19, duplicates)
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'orders'"))
}

// A batch says which of its jobs were duplicates, of a live job or of one
// before them in the batch; a key is per queue, and held in its states only.
func TestUniqueJobsInABatchAndTheirStates(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	first := c.do("POST", "/v1/queues/q/jobs", `{"payload": 0, "unique_key": "a"}`)
	require.Equal(t, 201, first.status)
	var job struct{ ID int64 }
	require.NoError(t, json.Unmarshal([]byte(first.body), &job))

	r := c.do("POST", "/v1/queues/q/jobs/batch", `{"jobs": [
		{"payload": 1, "unique_key": "a"},
		{"payload": 2, "unique_key": "b"},
		{"payload": 3},
		{"payload": 4, "unique_key": "b"},
		{"payload": 5, "unique_key": "c", "unique_for": "1h", "unique_states": ["available", "succeeded"]}]}`)
	require.Equal(t, 201, r.status, "%s", r.body)
	var batch struct {
		IDs        []int64
		Duplicates []int
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &batch))
	require.Equal(t, []int{0, 3}, batch.Duplicates)
	require.Equal(t, job.ID, batch.IDs[0], "the live job that holds a")
	require.Equal(t, batch.IDs[1], batch.IDs[3], "the first b of the batch")
	require.Equal(t, 4, count(t, pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'q'"))
	require.Equal(t, 201, c.do("POST", "/v1/queues/other/jobs", `{"payload": 0, "unique_key": "a"}`).status, "a key is per queue")

	// Done, a job no longer holds its key (by default); with succeeded among
	// its unique states, it still does.
	_, err := pool.Exec(t.Context(), "UPDATE baton.jobs SET state = 'succeeded', finished_at = now() WHERE queue = 'q'")
	require.NoError(t, err)
	require.Equal(t, 201, c.do("POST", "/v1/queues/q/jobs", `{"payload": 6, "unique_key": "a"}`).status)
	dup := c.do("POST", "/v1/queues/q/jobs", `{"payload": 7, "unique_key": "c", "unique_for": "1h", "unique_states": ["available", "succeeded"]}`)
	require.Equal(t, 200, dup.status, "%s", dup.body)
	require.NoError(t, json.Unmarshal([]byte(dup.body), &job))
	require.Equal(t, batch.IDs[4], job.ID)
	require.Equal(t, 201, c.do("POST", "/v1/queues/q/jobs", `{"payload": 8, "unique_key": "c", "unique_for": "2h", "unique_states": ["available", "succeeded"]}`).status,
		"another period is another key")
	var stored string
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT unique_key FROM baton.jobs WHERE id = $1", batch.IDs[4]).Scan(&stored))
	require.True(t, strings.HasPrefix(stored, "c\x1f"), "stored with its period: %q", stored)
}
