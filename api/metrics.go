package api

import (
	"cmp"
	"context"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/baton-run/baton/internal/store"
)

// otherQueues labels the queues past Config.MetricsQueues. Queue names
// cannot start with an underscore, so it names no real queue.
const otherQueues = "_other"

// metrics are the API's own: jobs it accepted, its HTTP requests, and, read
// from the database at each scrape, the state of every queue and of the hot
// tables.
type metrics struct {
	registry       *prometheus.Registry
	submitted      *prometheus.CounterVec
	requests       *prometheus.CounterVec
	requestSeconds *prometheus.HistogramVec
	inFlight       prometheus.Gauge
	queues         queueLabels
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			// Named for where it counts: the CLI, Go programs and
			// hand-offs create jobs that no API server sees.
			Name: "baton_api_jobs_submitted_total",
			Help: "Jobs accepted through this API server (not through the CLI, Go or hand-offs).",
		}, []string{"queue"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baton_api_requests_total",
			Help: "HTTP requests this server answered, by method, status code and route pattern (such as /v1/jobs/{id}).",
		}, []string{"method", "code", "route"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "baton_api_request_duration_seconds",
			Help:    "How long this server took to answer HTTP requests, by method, status code and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "code", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "baton_api_requests_in_flight",
			Help: "HTTP requests this server is answering now.",
		}),
	}
	m.queues = queueLabels{max: s.cfg.MetricsQueues, named: map[string]bool{}, series: m.submitted}
	m.registry.MustRegister(m.submitted, m.requests, m.requestSeconds, m.inFlight, databaseCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// instrument counts and times every request. Routes are labelled by their
// pattern, not their path, so ids and queue names make no new series.
func (m *metrics) instrument(next http.Handler) http.Handler {
	route := promhttp.WithLabelFromCtx("route", func(ctx context.Context) string {
		return cmp.Or(routePattern(ctx), "unmatched")
	})
	h := promhttp.InstrumentHandlerDuration(m.requestSeconds, next, route)
	h = promhttp.InstrumentHandlerCounter(m.requests, h, route)
	return promhttp.InstrumentHandlerInFlight(m.inFlight, h)
}

// queueLabels bounds the queue label of the counters this process keeps
// (series, the counter they are series of) to max names and _other. At each
// scrape the names become the queues the gauges name (the busiest, by jobs
// in the database), and the series of queues no longer named are dropped;
// between scrapes, queues first counted take the names still free. A caller
// making up queue names cannot grow the exposition without bound, nor keep
// the names from the busiest queues past one scrape (the first queues
// counted kept them for good, before).
type queueLabels struct {
	mu     sync.Mutex
	max    int
	named  map[string]bool
	series *prometheus.CounterVec
}

func (l *queueLabels) label(queue string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.named[queue] {
		if len(l.named) >= l.max {
			return otherQueues
		}
		l.named[queue] = true
	}
	return queue
}

// name makes the queues of views (but _other) the named ones.
func (l *queueLabels) name(views []QueueView) {
	named := make(map[string]bool, len(views))
	for _, v := range views {
		if v.Queue != otherQueues && len(named) < l.max {
			named[v.Queue] = true
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for q := range l.named {
		if !named[q] {
			l.series.DeleteLabelValues(q)
		}
	}
	l.named = named
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	gatherers := append(prometheus.Gatherers{s.metrics.registry}, s.cfg.Metrics...)
	promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorLog: errorLog{s}, EnableOpenMetrics: true}).ServeHTTP(w, r)
}

// busiest keeps the max queues with the most jobs (ties by name) and sums
// the rest into one named _other: its oldest age is theirs, and it counts
// as paused if all of them are.
func busiest(queues []QueueView, max int) []QueueView {
	if len(queues) <= max {
		return queues
	}
	total := func(v QueueView) (n int64) {
		for _, c := range v.States {
			n += c
		}
		return n
	}
	slices.SortFunc(queues, func(a, b QueueView) int {
		return cmp.Or(cmp.Compare(total(b), total(a)), cmp.Compare(a.Queue, b.Queue))
	})
	other := QueueView{Queue: otherQueues, Paused: true, States: map[store.JobState]int64{}}
	for _, v := range queues[max:] {
		for s, c := range v.States {
			other.States[s] += c
		}
		other.OldestAgeSeconds = math.Max(other.OldestAgeSeconds, v.OldestAgeSeconds)
		other.Paused = other.Paused && v.Paused
	}
	return append(queues[:max:max], other)
}

type errorLog struct{ s *Server }

func (l errorLog) Println(v ...any) { l.s.log.Warn("serving /metrics", "error", v) }

var (
	descUp = prometheus.NewDesc("baton_database_up",
		"1 if the database answered this scrape's queries.", nil, nil)
	descJobs = prometheus.NewDesc("baton_jobs",
		"Jobs in the database by queue and state (every replica's, from the counters).", []string{"queue", "state"}, nil)
	descOldest = prometheus.NewDesc("baton_queue_oldest_available_seconds",
		"How long the oldest due job of a queue has waited to be claimed.", []string{"queue"}, nil)
	descPaused = prometheus.NewDesc("baton_queue_paused",
		"1 if the queue is paused.", []string{"queue"}, nil)
	descLimit = prometheus.NewDesc("baton_queue_global_concurrency",
		"A queue's own limit on its running jobs over every replica (absent when it has none; compare baton_jobs{state=\"running\"}).", []string{"queue"}, nil)
	descMaxBacklog = prometheus.NewDesc("baton_queue_max_backlog",
		"A queue's max_backlog: submits that would leave more jobs waiting are refused (absent when it has none).", []string{"queue"}, nil)
	descRate = prometheus.NewDesc("baton_queue_rate_limit_per_second",
		"A queue's own rate limit on its claims over every replica, per second (absent when it has none).", []string{"queue"}, nil)
	descGroupWaiting = prometheus.NewDesc("baton_group_waiting_jobs",
		"Jobs of a group waiting in a queue (scheduled, available, retrying): the busiest groups by name, the rest of a queue's as group=\"_other\".", []string{"queue", "group"}, nil)
	descGroupRunning = prometheus.NewDesc("baton_group_running_jobs",
		"Jobs of a group running in a queue, which group_concurrency caps: the busiest groups by name, the rest of a queue's as group=\"_other\".", []string{"queue", "group"}, nil)
	descDead = prometheus.NewDesc("baton_table_dead_tuples",
		"Dead row versions in a Baton table, waiting for vacuum.", []string{"table"}, nil)
	descLive = prometheus.NewDesc("baton_table_live_tuples",
		"Live rows in a Baton table (the statistics' estimate).", []string{"table"}, nil)
	descVacuum = prometheus.NewDesc("baton_table_last_vacuum_timestamp_seconds",
		"When a Baton table was last vacuumed (auto or manual); 0 if never.", []string{"table"}, nil)
	descTableBytes = prometheus.NewDesc("baton_table_bytes",
		"Size on disk of a Baton table, without its indexes.", []string{"table"}, nil)
	descIndexBytes = prometheus.NewDesc("baton_table_index_bytes",
		"Size on disk of a Baton table's indexes.", []string{"table"}, nil)
	descOldestTx = prometheus.NewDesc("baton_database_oldest_transaction_seconds",
		"Age of the oldest open transaction in the database; long ones hold back vacuum.", nil, nil)
)

// databaseCollector reads queue and table health at scrape time, so the
// figures are the database's, whichever replica serves the scrape.
type databaseCollector struct{ s *Server }

func (c databaseCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descJobs, descOldest, descPaused, descLimit, descMaxBacklog, descRate, descGroupWaiting, descGroupRunning, descDead, descLive, descVacuum, descTableBytes, descIndexBytes, descOldestTx} {
		ch <- d
	}
}

func (c databaseCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := store.New(c.s.pool)
	queues, err := q.QueueSummary(ctx, store.QueueSummaryParams{MaxQueues: math.MaxInt32})
	if err == nil {
		var tables []store.TableHealthRow
		if tables, err = q.TableHealth(ctx); err == nil {
			var oldestTx float64
			var groups []store.GroupMetricsRow
			if oldestTx, err = q.MetricsOldestTransaction(ctx); err == nil {
				groups, err = q.GroupMetrics(ctx)
			}
			if err == nil {
				named := busiest(viewsOf(queues), c.s.cfg.MetricsQueues)
				c.s.metrics.queues.name(named)
				emit(ch, named, busiestGroups(groups, named, c.s.cfg.MetricsQueues), tables, oldestTx)
			}
		}
	}
	up := 1.0
	if err != nil {
		up = 0
		c.s.log.Warn("reading metrics from the database", "error", store.MapError(err))
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
}

// busiestGroups keeps the max busiest groups (rows come busiest first) of
// the queues /metrics names, and sums the rest of each such queue's groups
// into one named _other: group names are made up by submitters, like queue
// names, and bounded the same way. Groups of queues summed into _other are
// left out (their jobs count in that queue's figures).
func busiestGroups(rows []store.GroupMetricsRow, queues []QueueView, max int) []store.GroupMetricsRow {
	named := map[string]bool{}
	for _, v := range queues {
		named[v.Queue] = v.Queue != otherQueues
	}
	var kept []store.GroupMetricsRow
	other := map[string]*store.GroupMetricsRow{}
	var order []string
	for _, r := range rows {
		switch {
		case !named[r.Queue]:
		case len(kept) < max:
			kept = append(kept, r)
		default:
			o := other[r.Queue]
			if o == nil {
				o = &store.GroupMetricsRow{Queue: r.Queue, Group: otherQueues}
				other[r.Queue] = o
				order = append(order, r.Queue)
			}
			o.WaitingJobs += r.WaitingJobs
			o.RunningJobs += r.RunningJobs
		}
	}
	for _, q := range order {
		kept = append(kept, *other[q])
	}
	return kept
}

func emit(ch chan<- prometheus.Metric, queues []QueueView, groups []store.GroupMetricsRow, tables []store.TableHealthRow, oldestTx float64) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, v := range queues {
		for _, state := range store.AllJobStateValues() {
			gauge(descJobs, float64(v.Count(state)), v.Queue, string(state))
		}
		gauge(descOldest, v.OldestAgeSeconds, v.Queue)
		paused := 0.0
		if v.Paused {
			paused = 1
		}
		gauge(descPaused, paused, v.Queue)
		if v.GlobalConcurrency != nil {
			gauge(descLimit, float64(*v.GlobalConcurrency), v.Queue)
		}
		if v.MaxBacklog != nil {
			gauge(descMaxBacklog, float64(*v.MaxBacklog), v.Queue)
		}
		if v.RateLimit != nil {
			if r, err := store.ParseRate(*v.RateLimit); err == nil {
				gauge(descRate, float64(r.Count)/r.Period.Seconds(), v.Queue)
			}
		}
	}
	for _, g := range groups {
		gauge(descGroupWaiting, float64(g.WaitingJobs), g.Queue, g.Group)
		gauge(descGroupRunning, float64(g.RunningJobs), g.Queue, g.Group)
	}
	for _, t := range tables {
		gauge(descDead, float64(t.DeadRows), t.TableName)
		gauge(descLive, float64(t.LiveRows), t.TableName)
		lastVacuum := 0.0
		if t.LastVacuum != nil {
			lastVacuum = float64(t.LastVacuum.UnixNano()) / 1e9
		}
		gauge(descVacuum, lastVacuum, t.TableName)
		gauge(descTableBytes, float64(t.TableBytes), t.TableName)
		gauge(descIndexBytes, float64(t.IndexBytes), t.TableName)
	}
	gauge(descOldestTx, oldestTx)
}
