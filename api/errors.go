package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/baton-run/baton/internal/store"
)

// Problem is an RFC 9457 problem detail. Code is stable and meant for
// programs; Title and Detail are for people. Field names the offending input
// when there is one.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Detail    string `json:"detail,omitempty"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`

	retryAfter string // Retry-After header, for 503 and 429 queue_full
}

func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// problem builds a Problem; detail may use fmt verbs.
func problem(status int, code, field, detail string, args ...any) *Problem {
	return &Problem{
		Type: "urn:baton:problem:" + code, Title: http.StatusText(status), Status: status,
		Code: code, Field: field, Detail: fmt.Sprintf(detail, args...),
	}
}

// toProblem maps any error to the problem users see: domain errors to their
// 4xx, an unavailable database or an expired request deadline to 503, and
// anything else to a 500 whose detail stays in the log.
func toProblem(err error) *Problem {
	var p *Problem
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, store.ErrKeyInFlight):
		return problem(http.StatusConflict, "idempotency_in_progress", "Idempotency-Key",
			"a request with this Idempotency-Key is still in progress; retry later")
	case errors.Is(err, store.ErrKeyReused):
		return problem(http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key",
			"this Idempotency-Key was already used with a different request body")
	case errors.Is(err, store.ErrQueueFull):
		p := problem(http.StatusTooManyRequests, "queue_full", "", "%s; nothing was submitted: retry later", err)
		p.retryAfter = "1"
		return p
	case errors.Is(err, store.ErrNotFound):
		return problem(http.StatusNotFound, "not_found", "", "%s", err)
	case errors.Is(err, store.ErrConflict):
		return problem(http.StatusConflict, "conflict", "", "%s", err)
	case errors.Is(err, store.ErrInvalid):
		return problem(http.StatusUnprocessableEntity, "invalid_input", "", "%s", err)
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		p := problem(http.StatusServiceUnavailable, "unavailable", "", "the database is unavailable; retry later")
		p.retryAfter = "2"
		return p
	}
	return problem(http.StatusInternalServerError, "internal", "", "internal error")
}

// writeProblem writes err as application/problem+json, logging server-side
// failures with their detail (which never goes to the client).
func writeProblem(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	p := *toProblem(err)
	p.RequestID = middleware.GetReqID(r.Context())
	if p.Status == http.StatusInternalServerError {
		p.Detail = "internal error; see the server log for request " + p.RequestID
	}
	if p.Status >= 500 {
		log.Error("request failed", "request_id", p.RequestID, "code", p.Code, "error", err)
	}
	if p.retryAfter != "" {
		w.Header().Set("Retry-After", p.retryAfter)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON writes v as the JSON response body with status. It encodes v
// before it writes anything: a value that cannot be encoded is a bug, and
// recoverPanics answers it with a 500 problem instead of a success with an
// empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Errorf("encoding the response: %w", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
