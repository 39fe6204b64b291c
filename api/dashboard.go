package api

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/baton-run/baton/internal/store"
)

// The dashboard: server-rendered pages, htmx for auto-refresh, no build step.

//go:embed web
var webFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago":     ago,
	"seconds": func(s float64) string { return ago(time.Now().Add(-time.Duration(s * float64(time.Second)))) },
	"time":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
	"duration": func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
	},
	"pretty":   prettyJSON,
	"terminal": store.JobState.Terminal,
	"states":   store.AllJobStateValues,
	"bytes":    bytesIEC,
}).ParseFS(webFS, "web/*.html"))

// dashboard mounts the dashboard's routes on r.
func (s *Server) dashboard(r chi.Router) {
	static, _ := fs.Sub(webFS, "web/static")
	r.Handle("/static/*", http.StripPrefix("/static/", staticFiles(http.FileServerFS(filesOnly{static}))))
	r.Get("/login", s.loginPage)
	r.With(s.deadline).Post("/login", s.login)
	r.With(s.deadline).Post("/logout", s.logout)
	r.Group(func(r chi.Router) {
		r.Use(s.deadline, s.requireSession)
		r.Get("/", s.homePage)
		r.Get("/queues/{queue}", s.queuePage)
		r.Get("/charts", s.chartsFragment)
		r.Get("/jobs/{id}", s.jobPage)
		r.Post("/queues/{queue}/pause", s.dashboardPause(true))
		r.Post("/queues/{queue}/resume", s.dashboardPause(false))
		r.Post("/queues/{queue}/retention", s.dashboardRetention)
		r.Post("/queues/{queue}/retry", s.dashboardRetryDead)
		r.Post("/jobs/{id}/cancel", s.dashboardChange(store.Cancel))
		r.Post("/jobs/{id}/retry", s.dashboardChange(store.Retry))
	})
}

func staticFiles(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// filesOnly serves files and nothing else: a directory is not there, so
// /static/ lists nothing.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if info, err := file.Stat(); err != nil || info.IsDir() {
		file.Close()
		return nil, fs.ErrNotExist
	}
	return file, nil
}

// render executes a page into a buffer first, so a template error becomes a
// clean 500 page instead of half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	data["Auth"] = len(s.cfg.Tokens) > 0
	data["Path"] = r.URL.Path
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, page, data); err != nil {
		s.log.Error("rendering the dashboard", "page", page, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, message string) {
	s.render(w, r, status, "error.html", map[string]any{"Title": http.StatusText(status), "Status": status, "Message": message})
}

// renderProblem shows an error from the database layer the way the API
// would classify it.
func (s *Server) renderProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := toProblem(err)
	if p.Status >= 500 {
		s.log.Error("dashboard request failed", "path", r.URL.Path, "error", err)
	}
	s.renderError(w, r, p.Status, p.Detail)
}

// queuesPerPage is how many queues the home page lists at once: anyone may
// make up queue names, and the page refreshes every 2 s.
const queuesPerPage = 100

func (s *Server) homePage(w http.ResponseWriter, r *http.Request) {
	after := r.URL.Query().Get("after")
	if after != "" && !store.ValidQueueName(after) {
		s.renderError(w, r, http.StatusBadRequest, "after must be a queue name.")
		return
	}
	q := store.New(s.pool)
	queues, err := q.QueueSummary(r.Context(), store.QueueSummaryParams{After: after, MaxQueues: queuesPerPage + 1})
	if err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	var next string
	if len(queues) > queuesPerPage {
		queues = queues[:queuesPerPage]
		next = queues[queuesPerPage-1].Queue
	}
	total, err := q.JobCountTotals(r.Context())
	if err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	tables, err := q.TableHealth(r.Context())
	if err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	periodic, err := q.ReportPeriodic(r.Context(), "")
	if err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	s.render(w, r, http.StatusOK, "home.html", map[string]any{"Title": "Queues", "Queues": viewsOf(queues), "Total": total,
		"Tables": tables, "Periodic": periodic, "After": after, "Next": next, "Self": r.URL.RequestURI()})
}

// bytesIEC shows a size the way psql's pg_size_pretty does, in powers of 1024.
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= unit*10 && i < 4 {
		f /= unit
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.0f %s", f, []string{"", "kB", "MB", "GB", "TB"}[i])
}

const pageSize = 25

// maxDashboardGroups bounds a queue page's groups: those with the most due
// jobs (baton report groups lists them all).
const maxDashboardGroups = 20

func (s *Server) queuePage(w http.ResponseWriter, r *http.Request) {
	queue, err := queueParam(r)
	if err != nil {
		s.renderProblem(w, r, err)
		return
	}
	q := store.New(s.pool)
	found, err := q.QueueSummary(r.Context(), store.QueueSummaryParams{Only: &queue, MaxQueues: 1})
	if err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	if len(found) == 0 {
		s.renderError(w, r, http.StatusNotFound, fmt.Sprintf("There is no queue named %q.", queue))
		return
	}
	p := store.JobListParams{Queue: &queue, BeforeID: 1<<63 - 1, MaxJobs: pageSize + 1}
	state := store.JobState(r.URL.Query().Get("state"))
	if state != "" {
		if !state.Valid() {
			s.renderError(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a job state.", state))
			return
		}
		p.State = &state
	}
	// After "Retry all N dead": what it did, as numbers (no text from the URL).
	var retried *struct {
		Retried, Skipped int64
		More             bool
	}
	if q := r.URL.Query(); q.Has("retried") {
		n, err1 := strconv.ParseInt(q.Get("retried"), 10, 64)
		k, err2 := strconv.ParseInt(q.Get("skipped"), 10, 64)
		if err1 == nil && err2 == nil {
			retried = &struct {
				Retried, Skipped int64
				More             bool
			}{n, k, q.Get("more") == "1"}
		}
	}
	if v := r.URL.Query().Get("before"); v != "" {
		var ok bool
		if p.BeforeID, ok = store.ParseID(v); !ok {
			s.renderError(w, r, http.StatusBadRequest, "before must be a job id.")
			return
		}
	}
	tag := r.URL.Query().Get("tag")
	if tag != "" && !store.ValidTag(tag) {
		s.renderError(w, r, http.StatusBadRequest, fmt.Sprintf("A tag is 1 to %d characters without control characters.", store.MaxTagLength))
		return
	}
	jobs, err := store.ListJobs(r.Context(), s.pool, p, tag)
	if err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	var older int64
	if len(jobs) > pageSize {
		jobs = jobs[:pageSize]
		older = jobs[pageSize-1].ID
	}
	groups, err := store.New(s.pool).ReportGroups(r.Context(), store.ReportGroupsParams{Queue: queue, MaxGroups: maxDashboardGroups})
	if err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	s.render(w, r, http.StatusOK, "queue.html", map[string]any{
		"Title": queue, "Queue": QueueViewOf(found[0]), "Jobs": jobs, "State": string(state), "Older": older,
		"First": r.URL.Query().Get("before") == "", "Retried": retried, "Tag": tag, "Groups": groups,
	})
}

// lineageColumn is one depth of a job's journey: the jobs at that hop.
type lineageColumn struct {
	Depth int32
	Jobs  []store.JobLineageRow
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request) {
	id, err := idParam(r)
	if err != nil {
		s.renderProblem(w, r, err)
		return
	}
	st, err := store.Status(r.Context(), s.pool, id)
	if errors.Is(err, store.ErrNotFound) {
		s.renderError(w, r, http.StatusNotFound, fmt.Sprintf("There is no job %d.", id))
		return
	} else if err != nil {
		s.renderProblem(w, r, err)
		return
	}
	hops, err := store.New(s.pool).JobLineage(r.Context(), id)
	if err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	var lineage []lineageColumn
	for _, h := range hops {
		if len(lineage) == 0 || lineage[len(lineage)-1].Depth != h.Depth {
			lineage = append(lineage, lineageColumn{Depth: h.Depth})
		}
		lineage[len(lineage)-1].Jobs = append(lineage[len(lineage)-1].Jobs, h)
	}
	// The journey climbs through the parents that still exist: one that
	// retention pruned ends it at this job.
	parentPruned := st.ParentID != nil && (len(hops) == 0 || hops[0].ID == id)
	s.render(w, r, http.StatusOK, "job.html", map[string]any{
		"Title": fmt.Sprintf("Job %d", id), "Job": st, "Lineage": lineage, "Flash": r.URL.Query().Get("done"),
		"ParentPruned": parentPruned,
	})
}

func (s *Server) dashboardPause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		queue, err := queueParam(r)
		if err == nil {
			_, err = store.New(s.pool).QueuePause(r.Context(), store.QueuePauseParams{Name: queue, Paused: paused})
			err = queueNotFound(queue, err)
		}
		if err != nil {
			s.renderProblem(w, r, err)
			return
		}
		http.Redirect(w, r, localPath(r.PostFormValue("back")), http.StatusSeeOther)
	}
}

// dashboardRetryDead re-drives every dead job of a queue (the queue page's
// "Retry all N dead"), as POST /v1/queues/{queue}/retry does.
func (s *Server) dashboardRetryDead(w http.ResponseWriter, r *http.Request) {
	queue, err := queueParam(r)
	if err != nil {
		s.renderProblem(w, r, err)
		return
	}
	counts, err := store.RetryMatching(r.Context(), s.pool, store.RetryFilter{Queue: queue}, 0, time.Now().Add(s.cfg.RequestTimeout/2))
	if err != nil {
		s.renderProblem(w, r, err)
		return
	}
	more := 0
	if !counts.Complete {
		more = 1
	}
	http.Redirect(w, r, fmt.Sprintf("/queues/%s?retried=%d&skipped=%d&more=%d", queue, counts.Retried, counts.Skipped, more), http.StatusSeeOther)
}

// dashboardRetention saves the retention form of a queue's page: each
// field a duration, "forever", or empty for the default.
func (s *Server) dashboardRetention(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	queue, err := queueParam(r)
	if err != nil {
		s.renderProblem(w, r, err)
		return
	}
	p := store.QueueSetParams{Name: queue, SetSucceeded: true, SetDead: true, SetCanceled: true}
	for field, to := range map[string]**int64{"succeeded": &p.SucceededMs, "dead": &p.DeadMs, "canceled": &p.CanceledMs} {
		v := strings.TrimSpace(r.PostFormValue(field))
		if v == "" {
			continue // the default
		}
		d, err := store.ParseRetention(v)
		if err != nil {
			s.renderError(w, r, http.StatusUnprocessableEntity,
				fmt.Sprintf("%s: %q is not a retention: write a duration such as 48h, forever, or nothing for the default.", field, v))
			return
		}
		ms := store.RetentionMs(d)
		*to = &ms
	}
	if _, err := store.New(s.pool).QueueSet(r.Context(), p); err != nil {
		s.renderProblem(w, r, store.MapError(err))
		return
	}
	http.Redirect(w, r, localPath(r.PostFormValue("back")), http.StatusSeeOther)
}

func (s *Server) dashboardChange(change func(ctx context.Context, c store.Conn, id int64) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := idParam(r)
		if err == nil {
			err = change(r.Context(), s.pool, id)
		}
		if err != nil {
			s.renderProblem(w, r, err)
			return
		}
		verb := strings.TrimPrefix(r.URL.Path[strings.LastIndex(r.URL.Path, "/"):], "/")
		http.Redirect(w, r, fmt.Sprintf("/jobs/%d?done=%s", id, url.QueryEscape(verb)), http.StatusSeeOther)
	}
}

// ago is a short human duration since t: "4s", "3m 20s", "2h 5m", "3d 4h".
func ago(t time.Time) string {
	d := time.Since(t)
	if d < 0 {
		return "in " + short(-d)
	}
	return short(d)
}

func short(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}
