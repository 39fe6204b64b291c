package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/baton-run/baton/internal/store"
)

// queueParam validates the {queue} path parameter.
func queueParam(r *http.Request) (string, error) {
	q := chi.URLParam(r, "queue")
	if !store.ValidQueueName(q) {
		return "", problem(http.StatusUnprocessableEntity, "invalid_queue_name", "queue", "%s", store.QueueNameRule)
	}
	return q, nil
}

// idParam validates the {id} path parameter.
func idParam(r *http.Request) (int64, error) {
	raw := chi.URLParam(r, "id")
	id, ok := store.ParseID(raw)
	if !ok {
		return 0, problem(http.StatusBadRequest, "invalid_id", "id", "job id must be a positive 64-bit integer in plain decimal, got %q", raw)
	}
	return id, nil
}

// submit runs do (which submits jobs, under key when it is not empty) in a
// span under the request's: the span is the parent of every job's handler
// runs.
func (s *Server) submit(r *http.Request, jobs []store.NewJob, do func(ctx context.Context, key string) (replayed bool, err error)) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	ctx, span := s.submitSpan(r.Context(), jobs[0].Queue, len(jobs))
	defer span.End()
	tp := store.TraceParentOf(ctx)
	for i := range jobs {
		jobs[i].TraceParent = tp
	}
	replayed, err := do(ctx, key)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	if !replayed {
		// All jobs of a request share its queue.
		s.metrics.submitted.WithLabelValues(s.metrics.queues.label(jobs[0].Queue)).Add(float64(len(jobs)))
	}
	return nil
}

// POST /v1/queues/{queue}/jobs
func (s *Server) submitJob(w http.ResponseWriter, r *http.Request) {
	job, err := func() (store.NewJob, error) {
		queue, err := queueParam(r)
		if err != nil {
			return store.NewJob{}, err
		}
		body, err := readJSON(w, r, s.cfg.MaxBodyBytes)
		if err != nil {
			return store.NewJob{}, err
		}
		return parseJob(body, body.Next(), "", queue, s.cfg.MaxPayloadBytes)
	}()
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	// The answer comes from the submit itself: nothing is read after the
	// job commits, so a saved job is never answered with an error.
	var st *store.JobStatus
	var replayed, duplicate bool
	jobs := []store.NewJob{job}
	err = s.submit(r, jobs, func(ctx context.Context, key string) (bool, error) {
		st, replayed, duplicate, err = store.SubmitJob(ctx, s.pool, key, jobs[0])
		if span := trace.SpanFromContext(ctx); err == nil && span.IsRecording() {
			span.SetAttributes(semconv.MessagingMessageID(strconv.FormatInt(st.ID, 10)))
		}
		return replayed, err
	})
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", fmt.Sprintf("/v1/jobs/%d", st.ID))
	if duplicate {
		// Nothing was created: the job that holds the unique key.
		w.Header().Set("Baton-Duplicate", "true")
		writeJSON(w, http.StatusOK, st)
		return
	}
	writeJSON(w, http.StatusCreated, st)
}

// batchResponse answers a batch submit: the ids in request order, and the
// positions of the jobs that were duplicates (their ids are the jobs that
// hold their unique keys).
type batchResponse struct {
	Count      int     `json:"count"`
	IDs        []int64 `json:"ids"`
	Duplicates []int   `json:"duplicates,omitempty"`
}

// POST /v1/queues/{queue}/jobs/batch: up to MaxBatchJobs jobs, all or none.
func (s *Server) submitBatch(w http.ResponseWriter, r *http.Request) {
	jobs, err := func() ([]store.NewJob, error) {
		queue, err := queueParam(r)
		if err != nil {
			return nil, err
		}
		body, err := readJSON(w, r, s.cfg.MaxBatchBytes)
		if err != nil {
			return nil, err
		}
		return parseBatch(body, queue, s.cfg.MaxBatchJobs, s.cfg.MaxPayloadBytes)
	}()
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	var results []store.Submitted
	var replayed bool
	err = s.submit(r, jobs, func(ctx context.Context, key string) (bool, error) {
		results, replayed, err = store.SubmitResults(ctx, s.pool, key, jobs...)
		return replayed, err
	})
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	resp := batchResponse{Count: len(results), IDs: make([]int64, len(results))}
	for i, r := range results {
		resp.IDs[i] = r.ID
		if r.Duplicate {
			resp.Duplicates = append(resp.Duplicates, i)
		}
	}
	writeJSON(w, http.StatusCreated, resp)
}

// GET /v1/jobs/{id}
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	id, err := idParam(r)
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	st, err := store.Status(r.Context(), s.pool, id)
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// POST /v1/jobs/{id}/cancel
func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	s.changeState(w, r, store.Cancel)
}

// POST /v1/jobs/{id}/retry
func (s *Server) retryJob(w http.ResponseWriter, r *http.Request) {
	s.changeState(w, r, store.Retry)
}

func (s *Server) changeState(w http.ResponseWriter, r *http.Request, change func(ctx context.Context, c store.Conn, id int64) error) {
	id, err := idParam(r)
	if err == nil {
		err = change(r.Context(), s.pool, id)
	}
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	s.getJob(w, r)
}

// listResponse is one page of jobs, newest first.
type listResponse struct {
	Jobs       []*store.JobStatus `json:"jobs"`
	NextCursor *string            `json:"next_cursor"`
}

var listParams = []string{"queue", "state", "tag", "limit", "cursor"}

// GET /v1/jobs?queue=&state=&limit=&cursor=: keyset pagination on id, so
// pages stay stable while new jobs arrive.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	p, tag, err := parseListParams(r.URL.Query())
	if err != nil {
		writeProblem(w, r, s.log, err)
		return
	}
	limit := p.MaxJobs
	p.MaxJobs++ // one more tells whether there is a next page
	rows, err := store.ListJobs(r.Context(), s.pool, p, tag)
	if err != nil {
		writeProblem(w, r, s.log, store.MapError(err))
		return
	}
	resp := listResponse{Jobs: []*store.JobStatus{}}
	for i, j := range rows {
		if i == int(limit) {
			c := encodeCursor(rows[i-1].ID)
			resp.NextCursor = &c
			break
		}
		resp.Jobs = append(resp.Jobs, store.StatusOf(j))
	}
	writeJSON(w, http.StatusOK, resp)
}

func parseListParams(q url.Values) (p store.JobListParams, tag string, err error) {
	p = store.JobListParams{BeforeID: 1<<63 - 1}
	if p.MaxJobs, err = pageParams(q, 50, listParams...); err != nil {
		return p, "", err
	}
	if v := q.Get("queue"); q.Has("queue") {
		if !store.ValidQueueName(v) {
			return p, "", problem(http.StatusUnprocessableEntity, "invalid_queue_name", "queue", "%s", store.QueueNameRule)
		}
		p.Queue = &v
	}
	if v := q.Get("state"); q.Has("state") {
		st := store.JobState(v)
		if !st.Valid() {
			return p, "", problem(http.StatusUnprocessableEntity, "invalid_parameter", "state", "state must be one of %s", stateList)
		}
		p.State = &st
	}
	if tag = q.Get("tag"); q.Has("tag") && !store.ValidTag(tag) {
		return p, "", problem(http.StatusUnprocessableEntity, "out_of_range", "tag", "a tag is 1 to %d characters without control characters", store.MaxTagLength)
	}
	if v := q.Get("cursor"); q.Has("cursor") {
		id, err := decodeCursor(v)
		if err != nil {
			return p, "", problem(http.StatusBadRequest, "invalid_cursor", "cursor", "cursor is not one this API returned")
		}
		p.BeforeID = id
	}
	return p, tag, nil
}

// pageParams checks that q holds only the allowed parameters, each once,
// and reads its limit: 1 to 1000, def when absent.
func pageParams(q url.Values, def int32, allowed ...string) (int32, error) {
	for k, v := range q {
		if !slices.Contains(allowed, k) {
			return 0, problem(http.StatusUnprocessableEntity, "unknown_parameter", k, "unknown query parameter %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
		if len(v) != 1 {
			return 0, problem(http.StatusUnprocessableEntity, "invalid_parameter", k, "give %s once", k)
		}
	}
	if !q.Has("limit") {
		return def, nil
	}
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil || n < 1 || n > 1000 {
		return 0, problem(http.StatusUnprocessableEntity, "out_of_range", "limit", "limit must be an integer between 1 and 1000")
	}
	return int32(n), nil
}

// stateList names the job states, for error messages.
var stateList = func() string {
	var names []string
	for _, s := range store.AllJobStateValues() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}()

// Cursors are opaque to clients: the last id of a page, encoded.
func encodeCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("id:" + strconv.FormatInt(id, 10)))
}

func decodeCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, err
	}
	raw, ok := strings.CutPrefix(string(b), "id:")
	if !ok {
		return 0, errors.New("bad cursor")
	}
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		return 0, errors.New("bad cursor")
	}
	return id, nil
}
