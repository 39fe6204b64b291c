package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPanicsBecome500Problems(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := New(nil, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	h := s.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	require.Equal(t, 500, rec.Code)
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	var p Problem
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	require.Equal(t, "internal", p.Code)
	require.NotContains(t, p.Detail, "boom", "internal detail stays in the log")
	require.Contains(t, logs.String(), "boom")
}
