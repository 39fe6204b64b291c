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

func TestCheckEscapes(t *testing.T) {
	t.Parallel()
	for body, ok := range map[string]bool{
		`{"a":"\ud83d\ude00"}`: true,  // a valid pair
		`{"a":"\\ud800"}`:      true,  // an escaped backslash, then text
		`{"a":"\u00e9\n"}`:     true,  //
		`{"a":"\ud800"}`:       false, // high alone
		`{"a":"\ud800x"}`:      false, // high, then text
		`{"a":"\ud800\n"}`:     false, // high, then another escape
		`{"a":"\udc00"}`:       false, // low alone
		`{"\ud800":1}`:         false, // in a key
	} {
		err := checkEscapes([]byte(body))
		require.Equal(t, ok, err == nil, "%s: %v", body, err)
	}
}
