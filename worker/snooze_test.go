package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// changes lists a job's history as "from>to: error" lines.
func changes(s *store.JobStatus) []string {
	var out []string
	for _, e := range s.History {
		from := ""
		if e.From != nil {
			from = string(*e.From)
		}
		line := from + ">" + string(e.To)
		if e.Error != nil {
			line += ": " + *e.Error
		}
		out = append(out, line)
	}
	return out
}

// A handler that snoozes runs again later without using an attempt: with
// max_attempts 1, a job that snoozes twice still succeeds. Past the stage's
// max_snoozes, the attempt fails, so that a job cannot snooze for good.
func TestASnoozeUsesNoAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	name := b.handle(worker.HandlerFunc(func(_ context.Context, j *worker.Job) (json.RawMessage, error) {
		if string(j.Payload) == `"forever"` || runs.Add(1) <= 2 {
			return nil, worker.Snooze(50 * time.Millisecond)
		}
		return nil, nil
	}))
	b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    max_attempts: 1\n    max_snoozes: 3\n", name))

	s := b.waitState(b.submit(`"twice"`), "succeeded")
	require.Equal(t, int32(1), s.Attempts)
	history := strings.Join(changes(s), "\n")
	require.Equal(t, 2, strings.Count(history, "running>scheduled: snoozed for 50ms\n"), history)
	require.True(t, strings.HasSuffix(history, "running>succeeded"), history)
	require.Equal(t, 2, count(t, b.pool, "SELECT count(*) FROM baton.attempts WHERE job_id = $1 AND outcome = 'snoozed'", s.ID))

	s = b.waitState(b.submit(`"forever"`), "dead")
	require.Equal(t, 3, count(t, b.pool, "SELECT snoozes FROM baton.job_snoozes WHERE job_id = $1", s.ID))
	require.Contains(t, *s.LastError, "snoozed for 50ms, and snoozed 3 times already (max_snoozes): the attempt fails")
	require.NoError(t, store.Retry(context.Background(), b.pool, s.ID))
	s = b.waitState(s.ID, "dead")
	require.Equal(t, 3, count(t, b.pool, "SELECT snoozes FROM baton.job_snoozes WHERE job_id = $1", s.ID), "a retry forgot the first three")
}

// A handler may end its job as canceled: not dead, with its reason.
func TestAHandlerCancelsItsJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	name := b.handle(worker.HandlerFunc(func(context.Context, *worker.Job) (json.RawMessage, error) {
		return nil, worker.Cancel(errors.New("the order was withdrawn"))
	}))
	b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {go: %q}\n    next: b\n", name))
	s := b.waitState(b.submit(`{}`), "canceled")
	require.Equal(t, int32(1), s.Attempts, "no attempt after it")
	require.Equal(t, "canceled by its handler: the order was withdrawn", *s.LastError)
	require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM baton.attempts WHERE job_id = $1 AND outcome = 'canceled'", s.ID))
	require.Zero(t, count(t, b.pool, "SELECT count(*) FROM baton.jobs WHERE queue = 'b'"))
}

// An exec handler snoozes with exit code 75 and {"snooze": "…"} on stdout,
// and cancels with {"cancel": "…"}; an exit code 75 with anything else is a
// plain failure that says what was missing.
func TestAnExecHandlerSnoozesAndCancels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	marks := t.TempDir()
	b.start(fmt.Sprintf(`poll_interval: 20ms
stages:
  - queue: a
    max_attempts: 1
    env: {MARKS: %q}
    handler:
      exec:
        - sh
        - -c
        - |
          p=$(cat)
          case "$p" in
            *snooze*) [ -e "$MARKS/$BATON_JOB_ID" ] && { echo '{"done": true}'; exit 0; }
                      touch "$MARKS/$BATON_JOB_ID"; echo '{"snooze": "50ms"}'; exit 75;;
            *cancel*) echo '{"cancel": "no such customer"}'; exit 75;;
            *) echo 'oops'; exit 75;;
          esac
`, marks))
	s := b.waitState(b.submit(`"snooze"`), "succeeded")
	require.Equal(t, int32(1), s.Attempts)
	require.Contains(t, changes(s), "running>scheduled: snoozed for 50ms")
	require.FileExists(t, filepath.Join(marks, fmt.Sprint(s.ID)))

	s = b.waitState(b.submit(`"cancel"`), "canceled")
	require.Equal(t, "canceled by its handler: no such customer", *s.LastError)

	s = b.waitState(b.submit(`"neither"`), "dead")
	require.Contains(t, *s.LastError, `exit status 75 without an instruction on stdout (want {"snooze": "30s"} or {"cancel": "why"}): "oops"`)
}

// An http handler snoozes when the receiver answers 429 or 503 with
// Retry-After, and cancels its job on 410 Gone.
func TestAnHTTPHandlerSnoozesAndCancels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case string(body) == `"cancel"`:
			http.Error(w, "that account is closed", http.StatusGone)
		case string(body) == `"snooze"` && calls.Add(1) == 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte(`{"ok": true}`))
		}
	}))
	t.Cleanup(srv.Close)
	b.start(fmt.Sprintf("poll_interval: 20ms\nstages:\n  - queue: a\n    handler: {http: {url: %q}}\n    max_attempts: 1\n", srv.URL))
	s := b.waitState(b.submit(`"snooze"`), "succeeded")
	require.Contains(t, changes(s), "running>available: snoozed for 0s")
	s = b.waitState(b.submit(`"cancel"`), "canceled")
	require.Contains(t, *s.LastError, "410 Gone: that account is closed")
}
