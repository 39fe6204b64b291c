package batonclient_test

import (
	"context"
	"net/http"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	batonclient "github.com/baton-run/baton/clients/go"
)

// The client oapi-codegen makes of api/openapi.yaml, with its defaults,
// against a real server: submit, get, list and cancel, and a problem. The
// server is the one BATON_TEST_URL names: cmd/baton's
// TestGoClientFromOapiCodegen starts it and runs this.
func TestAgainstAServer(t *testing.T) {
	base := os.Getenv("BATON_TEST_URL")
	if base == "" {
		t.Skip("BATON_TEST_URL names no server (cmd/baton's TestGoClientFromOapiCodegen runs this with one)")
	}
	ctx := context.Background()
	c, err := batonclient.NewClientWithResponses(base)
	require.NoError(t, err)

	var payload batonclient.JSONValue
	require.NoError(t, payload.UnmarshalJSON([]byte(`{"image": "cat.png"}`)))
	delay, priority := "1h", int32(5)
	sub, err := c.SubmitJobWithResponse(ctx, "resize", nil, batonclient.NewJob{Payload: payload, Delay: &delay, Priority: &priority,
		Tags: &[]string{"customer-42"}})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, sub.StatusCode(), string(sub.Body))
	job := sub.JSON201
	require.Equal(t, "resize", job.Queue)
	require.Equal(t, batonclient.StateScheduled, job.State)
	require.Equal(t, int32(5), job.Priority)

	got, err := c.GetJobWithResponse(ctx, job.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, got.StatusCode())
	stored, err := got.JSON200.Payload.MarshalJSON()
	require.NoError(t, err)
	require.JSONEq(t, `{"image": "cat.png"}`, string(stored))

	queue, limit := "resize", int32(10)
	list, err := c.ListJobsWithResponse(ctx, &batonclient.ListJobsParams{Queue: &queue, Limit: &limit})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, list.StatusCode(), string(list.Body))
	require.True(t, slices.ContainsFunc(list.JSON200.Jobs, func(j batonclient.Job) bool { return j.Id == job.Id }))

	canceled, err := c.CancelJobWithResponse(ctx, job.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, canceled.StatusCode(), string(canceled.Body))
	require.Equal(t, batonclient.StateCanceled, canceled.JSON200.State)

	again, err := c.CancelJobWithResponse(ctx, job.Id)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, again.StatusCode())
	require.NotNil(t, again.ApplicationproblemJSON409)
	require.NotEmpty(t, again.ApplicationproblemJSON409.Code)
}
