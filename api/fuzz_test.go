package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/baton-run/baton/api"
	"github.com/baton-run/baton/internal/dbtest"
)

// FuzzSubmit throws arbitrary bodies at the submit routes: the answer is
// never a 5xx, and always JSON (a job, or a problem). Run it with
// go test -fuzz FuzzSubmit ./api/; the seeds in testdata/fuzz run with every go test.
func FuzzSubmit(f *testing.F) {
	for _, seed := range []string{
		`{"payload": {"image": "cat.png"}}`,
		`{"payload": 1, "delay": "90s", "priority": 100, "max_attempts": 3}`,
		`{"payload": null, "run_at": "2030-01-02T15:04:05Z"}`,
		`{"jobs": [{"payload": 1}, {"payload": [1, {"a": "b"}]}]}`,
		`{"payload": "\ud83d\ude00"}`,
		`{"payload": "\u0000"}`,
		`{"payload": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"payload": 1e999, "priority": -0}`,
		`{"payload": {}, "payload": {}}`,
		"{\"payload\": \"\xc3\x28\"}",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	pool := dbtest.New(f)
	h := api.New(pool, api.Config{Logger: slog.New(slog.DiscardHandler)}).Handler()
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		path := "/v1/queues/fuzz/jobs"
		if batch {
			path += "/batch"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("status %d is not problem+json", rec.Code)
		}
	})
}
