package api

import (
	"net/http"

	"github.com/baton-run/baton/db"
)

// queueView is one queue as the API shows it.
type queueView struct {
	Queue string `json:"queue"`
	// Depth counts jobs waiting to run: scheduled, available and retrying.
	Depth    int64 `json:"depth"`
	InFlight int64 `json:"in_flight"`
	// OldestAgeSeconds is how long the oldest due job has waited.
	OldestAgeSeconds float64          `json:"oldest_age_seconds"`
	Paused           bool             `json:"paused"`
	States           map[string]int64 `json:"states"`
}

// GET /v1/queues
func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) {
	rows, err := db.New(s.pool).QueueSummary(r.Context())
	if err != nil {
		writeProblem(w, r, s.log, db.MapError(err))
		return
	}
	out := struct {
		Queues []queueView `json:"queues"`
	}{Queues: []queueView{}}
	for _, q := range rows {
		out.Queues = append(out.Queues, queueView{
			Queue: q.Queue, Depth: q.Scheduled + q.Available + q.Retrying, InFlight: q.Running,
			OldestAgeSeconds: q.OldestAvailableSeconds, Paused: q.Paused,
			States: map[string]int64{
				"scheduled": q.Scheduled, "available": q.Available, "running": q.Running, "retrying": q.Retrying,
				"succeeded": q.Succeeded, "dead": q.Dead, "canceled": q.Canceled,
			},
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// POST /v1/queues/{queue}/pause and /resume: workers on every replica stop
// (or resume) claiming from the queue at their next poll.
func (s *Server) pauseQueue(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		queue, err := queueParam(r)
		if err != nil {
			writeProblem(w, r, s.log, err)
			return
		}
		q, err := db.New(s.pool).QueuePause(r.Context(), db.QueuePauseParams{Name: queue, Paused: paused})
		if err != nil {
			writeProblem(w, r, s.log, db.MapError(err))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"queue": q.Name, "paused": q.Paused})
	}
}
