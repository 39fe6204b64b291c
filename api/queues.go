package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/baton-run/baton/internal/jsonb"
	"github.com/baton-run/baton/internal/store"
)

// QueueView is one queue as /v1/queues, the dashboard, /metrics and baton
// queue list --format json show it.
type QueueView struct {
	Queue string `json:"queue"`
	// Depth counts jobs waiting to run: scheduled, available and retrying.
	Depth    int64 `json:"depth"`
	InFlight int64 `json:"in_flight"`
	// OldestAgeSeconds is how long the oldest due job has waited.
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	Paused           bool    `json:"paused"`
	// States counts the queue's jobs in every state, zeros included.
	States    map[store.JobState]int64 `json:"states"`
	Retention retentionView            `json:"retention"`
	// GlobalConcurrency is the queue's own limit on its running jobs over
	// every replica (PATCH), null when it has none (its stages' own, if any,
	// apply).
	GlobalConcurrency *int32 `json:"global_concurrency"`
	// MaxBacklog is the most jobs the queue may have waiting (scheduled,
	// available and retrying) for a submit to be accepted; null for no limit.
	MaxBacklog *int32 `json:"max_backlog"`
	// RateLimit is the queue's own rate ("20/s", "600/m") over every
	// replica, null when it has none (its stages' own, if any, apply).
	RateLimit *string `json:"rate_limit"`
}

// QueueViewOf is the view of a row of db.QueueSummary.
func QueueViewOf(q store.QueueSummaryRow) QueueView {
	v := QueueView{
		Queue: q.Queue, Depth: q.Scheduled + q.Available + q.Retrying, InFlight: q.Running,
		OldestAgeSeconds: q.OldestAvailableSeconds, Paused: q.Paused, States: map[store.JobState]int64{},
		Retention:         retentionOf(q.RetainSucceededMs, q.RetainDeadMs, q.RetainCanceledMs),
		GlobalConcurrency: q.GlobalConcurrency,
		MaxBacklog:        q.MaxBacklog,
		RateLimit:         rateView(q.RateCount, q.RatePeriodMs),
	}
	for _, s := range store.AllJobStateValues() {
		v.States[s] = q.Count(s)
	}
	return v
}

// Count is how many of the queue's jobs are in state s (for templates).
func (v QueueView) Count(s store.JobState) int64 { return v.States[s] }

func viewsOf(rows []store.QueueSummaryRow) []QueueView {
	views := make([]QueueView, len(rows))
	for i, q := range rows {
		views[i] = QueueViewOf(q)
	}
	return views
}

// retentionView is how long a queue keeps its finished jobs, by final
// state: a duration, "forever", or null for the replicas' default.
type retentionView struct {
	Succeeded *string `json:"succeeded"`
	Dead      *string `json:"dead"`
	Canceled  *string `json:"canceled"`
}

func retentionOf(succeeded, dead, canceled *int64) retentionView {
	return retentionView{store.FormatRetention(succeeded), store.FormatRetention(dead), store.FormatRetention(canceled)}
}

// GET /v1/queues?limit=&cursor=: queues in name order, a page at a time
// (100 by default): anyone may make up queue names, by submitting.
func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := pageParams(q, 100, "limit", "cursor")
	p := store.QueueSummaryParams{MaxQueues: limit + 1} // one more tells whether there is a next page
	if err == nil && q.Has("cursor") {
		p.After, err = decodeQueueCursor(q.Get("cursor"))
	}
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	rows, err := store.New(s.pool).QueueSummary(r.Context(), p)
	if err != nil {
		writeProblem(w, r, s.log, store.MapError(err))
		return
	}
	resp := struct {
		Queues     []QueueView `json:"queues"`
		NextCursor *string     `json:"next_cursor"`
	}{}
	if len(rows) > int(limit) {
		rows = rows[:limit]
		c := encodeQueueCursor(rows[limit-1].Queue)
		resp.NextCursor = &c
	}
	resp.Queues = viewsOf(rows)
	writeJSON(w, http.StatusOK, resp)
}

// Queue cursors are opaque to clients too: the last queue of a page.
func encodeQueueCursor(queue string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("queue:" + queue))
}

func decodeQueueCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	queue, ok := strings.CutPrefix(string(b), "queue:")
	if err != nil || !ok || !store.ValidQueueName(queue) {
		return "", problem(http.StatusBadRequest, "invalid_cursor", "cursor", "cursor is not one this API returned")
	}
	return queue, nil
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
		q, err := store.New(s.pool).QueuePause(r.Context(), store.QueuePauseParams{Name: queue, Paused: paused})
		if err != nil {
			writeProblem(w, r, s.log, queueNotFound(queue, err))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"queue": q.Name, "paused": q.Paused})
	}
}

// queueFields are the fields of PATCH /v1/queues/{queue}.
var queueFields = []string{"retain_succeeded", "retain_dead", "retain_canceled", "global_concurrency", "max_backlog", "rate_limit"}

// PATCH /v1/queues/{queue}: a JSON merge patch of the queue's settings,
// creating the queue if it is new. Each retain_* field is a duration
// ("48h"), "forever", or null (back to the replicas' default);
// global_concurrency is an integer of at least 1, or null (back to the
// stages' own); max_backlog is an integer of at least 1, or null (no limit);
// rate_limit is a rate ("20/s", "600/m") or null (back to the stages' own);
// a field left out stays as it is.
func (s *Server) patchQueue(w http.ResponseWriter, r *http.Request) {
	p, err := func() (store.QueueSetParams, error) {
		p := store.QueueSetParams{}
		queue, err := queueParam(r)
		if err != nil {
			return p, err
		}
		p.Name = queue
		body, err := readJSON(w, r, 16<<10)
		if err != nil {
			return p, err
		}
		if t := body.Next(); t.Kind != '{' {
			return p, notAnObject("")
		}
		for k := body.Next(); k.Kind == '"'; k = body.Next() {
			key, err := fieldName(k, "", queueFields)
			if err != nil {
				return p, err
			}
			if key == "global_concurrency" || key == "max_backlog" {
				set, limit, most := &p.SetGlobalConcurrency, &p.GlobalConcurrency, int64(store.MaxGlobalConcurrency)
				if key == "max_backlog" {
					set, limit, most = &p.SetMaxBacklog, &p.MaxBacklog, math.MaxInt32
				}
				if err := limitField(set, limit, body.Next(), key, most); err != nil {
					return p, err
				}
				continue
			}
			if key == "rate_limit" {
				if err := rateField(&p, body.Next()); err != nil {
					return p, err
				}
				continue
			}
			set, ms := map[string]*bool{"retain_succeeded": &p.SetSucceeded, "retain_dead": &p.SetDead, "retain_canceled": &p.SetCanceled}[key],
				map[string]**int64{"retain_succeeded": &p.SucceededMs, "retain_dead": &p.DeadMs, "retain_canceled": &p.CanceledMs}[key]
			if *set {
				return p, problem(http.StatusBadRequest, "duplicate_key", key, "key %q appears twice", key)
			}
			*set = true
			v := body.Next()
			if v.Kind == 'n' {
				continue // back to the default
			}
			text, err := stringValue(v, key)
			if err != nil {
				return p, err
			}
			d, err := store.ParseRetention(text)
			if err != nil {
				return p, problem(http.StatusUnprocessableEntity, "invalid_duration", key,
					"%s %q: want a duration of at least 1s such as \"48h\", \"forever\", or null for the default", key, text)
			}
			n := store.RetentionMs(d)
			*ms = &n
		}
		return p, nil
	}()
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	q, err := store.New(s.pool).QueueSet(r.Context(), p)
	if err != nil {
		writeProblem(w, r, s.log, store.MapError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"queue": q.Name, "paused": q.Paused, "retention": retentionOf(q.RetainSucceededMs, q.RetainDeadMs, q.RetainCanceledMs),
		"global_concurrency": q.GlobalConcurrency, "max_backlog": q.MaxBacklog, "rate_limit": rateView(q.RateCount, q.RatePeriodMs),
	})
}

// rateField reads rate_limit: a rate, or null (none of the queue's own).
func rateField(p *store.QueueSetParams, v jsonb.Token) error {
	if p.SetRate {
		return problem(http.StatusBadRequest, "duplicate_key", "rate_limit", "key %q appears twice", "rate_limit")
	}
	p.SetRate = true
	if v.Kind == 'n' {
		return nil
	}
	text, err := stringValue(v, "rate_limit")
	if err != nil {
		return err
	}
	rate, err := store.ParseRate(text)
	if err != nil {
		return problem(http.StatusUnprocessableEntity, "invalid_rate", "rate_limit", "rate_limit %q: %s", text, store.RateRule)
	}
	count, period := rate.Count, rate.PeriodMs()
	p.RateCount, p.RatePeriodMs = &count, &period
	return nil
}

// rateView shows a queue's own rate as it is written ("20/s"), or null.
func rateView(count, periodMs *int32) *string {
	if count == nil || periodMs == nil {
		return nil
	}
	r := store.RateOf(*count, *periodMs).String()
	return &r
}

// PATCH /v1/queues/{queue}/groups/{group}: a group's weight in the queue's
// fair shares, {"weight": 3} (1 to 1000), or {"weight": null} for the
// default, 1. Creates the queue if it is new.
func (s *Server) patchGroup(w http.ResponseWriter, r *http.Request) {
	p, err := func() (store.QueueGroupWeightParams, error) {
		p := store.QueueGroupWeightParams{}
		queue, err := queueParam(r)
		if err != nil {
			return p, err
		}
		group, err := url.PathUnescape(chi.URLParam(r, "group"))
		if err == nil {
			err = store.ValidateGroup(group)
		}
		if err != nil || group == "" {
			return p, problem(http.StatusUnprocessableEntity, "invalid_group", "group",
				"a group must be 1 to %d characters without control characters", store.MaxGroupLength)
		}
		p.Queue, p.GroupKey = queue, group
		body, err := readJSON(w, r, 1<<10)
		if err != nil {
			return p, err
		}
		if t := body.Next(); t.Kind != '{' {
			return p, notAnObject("")
		}
		var set bool
		for k := body.Next(); k.Kind == '"'; k = body.Next() {
			if _, err := fieldName(k, "", []string{"weight"}); err != nil {
				return p, err
			}
			if err := limitField(&set, &p.Weight, body.Next(), "weight", store.MaxGroupWeight); err != nil {
				return p, err
			}
		}
		if !set {
			return p, problem(http.StatusUnprocessableEntity, "missing_field", "weight", "weight is required: 1 to %d, or null for the default (1)", store.MaxGroupWeight)
		}
		return p, nil
	}()
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	weight, err := store.New(s.pool).QueueGroupWeight(r.Context(), p)
	if err != nil {
		writeProblem(w, r, s.log, store.MapError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": p.Queue, "group": p.GroupKey, "weight": weight})
}

// limitField reads a limit: an integer from 1 to most, or null (none).
func limitField(set *bool, limit **int32, v jsonb.Token, key string, most int64) error {
	if *set {
		return problem(http.StatusBadRequest, "duplicate_key", key, "key %q appears twice", key)
	}
	*set = true
	if v.Kind == 'n' {
		return nil
	}
	n, err := intValue(v, key, 1, most)
	if err != nil {
		return err
	}
	l := int32(n)
	*limit = &l
	return nil
}

// queueNotFound says which queue does not exist, when err says none does: a
// queue exists once a job is submitted to it, a worker works it, or its
// settings are set.
func queueNotFound(queue string, err error) error {
	if err = store.MapError(err); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("queue %q %w (a queue exists once a job is submitted to it or a worker works it)", queue, store.ErrNotFound)
	}
	return err
}
