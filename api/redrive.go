package api

import (
	"net/http"
	"slices"
	"time"

	"github.com/baton-run/baton/internal/store"
)

// retryFields are the fields of POST /v1/queues/{queue}/retry.
var retryFields = []string{"state", "since", "error_like", "dry_run"}

// POST /v1/queues/{queue}/retry: re-drives the queue's dead (or canceled)
// jobs that the body chooses, in batches, for up to half the request's
// deadline; complete is false when jobs were left (send it again).
func (s *Server) retryQueue(w http.ResponseWriter, r *http.Request) {
	f, err := func() (store.RetryFilter, error) {
		var f store.RetryFilter
		queue, err := queueParam(r)
		if err != nil {
			return f, err
		}
		f.Queue = queue
		body, err := readJSON(w, r, 16<<10)
		if err != nil {
			return f, err
		}
		if t := body.Next(); t.Kind != '{' {
			return f, notAnObject("")
		}
		var seen []string
		for k := body.Next(); k.Kind == '"'; k = body.Next() {
			key, err := fieldName(k, "", retryFields)
			if err != nil {
				return f, err
			}
			if slices.Contains(seen, key) {
				return f, problem(http.StatusBadRequest, "duplicate_key", key, "key %q appears twice", key)
			}
			seen = append(seen, key)
			v := body.Next()
			switch key {
			case "state":
				var st string
				if st, err = stringValue(v, key); err == nil && st != string(store.BatonJobStateDead) && st != string(store.BatonJobStateCanceled) {
					err = problem(http.StatusUnprocessableEntity, "invalid_parameter", key, "state must be dead or canceled")
				}
				f.State = store.JobState(st)
			case "since":
				var text string
				if text, err = stringValue(v, key); err == nil {
					if f.Since, err = time.ParseDuration(text); err != nil || f.Since <= 0 || f.Since > store.MaxDelay {
						err = problem(http.StatusUnprocessableEntity, "invalid_duration", key,
							"since %q must be a duration from the jobs' finish, such as \"1h\", at most %s", text, store.MaxDelay)
					}
				}
			case "error_like":
				if f.ErrorLike, err = stringValue(v, key); err == nil && len(f.ErrorLike) > 1024 {
					err = problem(http.StatusUnprocessableEntity, "out_of_range", key, "error_like is longer than 1024 bytes")
				}
			case "dry_run":
				if v.Kind != 't' && v.Kind != 'f' {
					err = problem(http.StatusUnprocessableEntity, "invalid_type", key, "dry_run must be true or false")
				}
				f.DryRun = v.Kind == 't'
			}
			if err != nil {
				return f, err
			}
		}
		return f, f.Validate()
	}()
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	counts, err := store.RetryMatching(r.Context(), s.pool, f, 0, time.Now().Add(s.cfg.RequestTimeout/2))
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, counts)
}
