package api_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/api"
)

// A refused request costs at most a small multiple of its body cap in
// memory, whatever its body holds: the body once, read in chunks, and no
// decoded tree of it (a 30 MiB batch of zeros took 1.2 GB at its peak and
// allocated 3.9 GB before). The test measures the bytes the process
// allocates while serving each request, so it runs alone (not parallel).
func TestRefusedRequestsAllocateAboutTheirBody(t *testing.T) { //nolint:paralleltest // measures the process's allocations
	const batchCap, bodyCap = 32 << 20, 1 << 20
	h := api.New(nil, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler()
	zeros := `{"jobs":[{"payload":[` + strings.Repeat("0,", 15<<20) + `0]}]}`
	job := `{"payload":{"text":"` + strings.Repeat("x", 3000) + `"}},`
	lastTooBig := `{"jobs":[` + strings.Repeat(job, 9000) + `{"payload":"` + strings.Repeat("y", 300<<10) + `"}]}`
	for _, tt := range []struct {
		name, path, body string
		chunked          bool
		status           int
		bodyCap          int
	}{
		{"BatchOfZeros", "/v1/queues/a/jobs/batch", zeros, false, 413, batchCap},
		{"BatchOfZerosChunked", "/v1/queues/a/jobs/batch", zeros, true, 413, batchCap},
		{"BatchWhoseLastPayloadIsTooLarge", "/v1/queues/a/jobs/batch", lastTooBig, false, 413, batchCap},
		{"BatchOverTheCap", "/v1/queues/a/jobs/batch", zeros + strings.Repeat(" ", 3<<20), true, 413, batchCap},
		{"BatchWithBadJSONAtTheEnd", "/v1/queues/a/jobs/batch", zeros[:len(zeros)-1], false, 400, batchCap},
		{"JobWithPayloadOverTheCap", "/v1/queues/a/jobs", `{"payload":[` + strings.Repeat("0,", 400<<10) + `0]}`, false, 413, bodyCap},
	} {
		req := httptest.NewRequest("POST", tt.path, strings.NewReader(tt.body))
		if tt.chunked {
			req = httptest.NewRequest("POST", tt.path, io.MultiReader(strings.NewReader(tt.body)))
			req.ContentLength = -1
		}
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h.ServeHTTP(rec, req)
		runtime.ReadMemStats(&after)
		n := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d MiB body, %d, allocated %d MiB", tt.name, len(tt.body)>>20, rec.Code, n>>20)
		require.Equal(t, tt.status, rec.Code, "%s: %s", tt.name, rec.Body)
		require.Less(t, n, uint64(4*tt.bodyCap), "%s allocated %d MiB", tt.name, n>>20)
	}
}
