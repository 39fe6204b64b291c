package worker

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Worker's Prometheus metrics, registered where its Config
// says (Config.Metrics), so that two Workers in one process never share
// series.
type metrics struct {
	claimed, claimedAhead, finished, leasesLost, fenced            *prometheus.CounterVec
	slots                                                          *prometheus.GaugeVec
	handlerSeconds, pickupSeconds, claimSeconds, completionSeconds *prometheus.HistogramVec
}

var statementBuckets = prometheus.ExponentialBucketsRange(0.0002, 10, 40) // 0.2 ms .. 10 s

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		claimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baton_jobs_claimed_total",
			Help: "Jobs claimed by this worker.",
		}, []string{"queue"}),
		claimedAhead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baton_jobs_claimed_ahead_total",
			Help: "Jobs claimed ahead of a free slot while a backlog waited: they waited in this worker for a slot (at most 250 ms of the handler's work over the slots).",
		}, []string{"queue"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baton_jobs_finished_total",
			Help: "Attempts this worker recorded, by outcome: succeeded, retrying or dead.",
		}, []string{"queue", "outcome"}),
		leasesLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baton_leases_lost_total",
			Help: "Handlers stopped because their lease moved on (expired and reaped, or canceled).",
		}, []string{"queue"}),
		fenced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baton_writes_fenced_total",
			Help: "Completions and failures rejected by the lease fence: a zombie's write that changed nothing.",
		}, []string{"queue"}),
		slots: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "baton_stage_slots",
			Help: "Handler slots this worker's stage may fill: its concurrency, or the adaptive slot count of a stage with none set.",
		}, []string{"queue"}),
		handlerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "baton_handler_duration_seconds",
			Help:    "How long handlers ran, whatever their outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12), // 0.5ms .. ~35min
		}, []string{"queue"}),
		pickupSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "baton_pickup_latency_seconds",
			Help:    "From when a job was due (run_at) to its claim, in database time, plus the wait for a slot of a job claimed ahead; for a direct hand-off (created claimed), the completion statement that created it, as the worker timed it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
		}, []string{"queue"}),
		// The hot path's two statements, timed by the worker (round trip
		// included): the first place a slow or bloated database shows. Fine
		// buckets (each 1.32 times the last), so that a p99 read from them
		// moves when the statement does.
		claimSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "baton_claim_duration_seconds",
			Help:    "How long claim statements took, from the worker, round trip included.",
			Buckets: statementBuckets,
		}, []string{"queue"}),
		completionSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "baton_completion_duration_seconds",
			Help:    "How long grouped completion statements took (hand-offs included), from the worker.",
			Buckets: statementBuckets,
		}, []string{"queue"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.claimed, m.claimedAhead, m.finished, m.leasesLost, m.fenced, m.slots,
		m.handlerSeconds, m.pickupSeconds, m.claimSeconds, m.completionSeconds} {
		if err := reg.Register(c); err != nil {
			// Most often another Worker's metrics are registered there already.
			return nil, fmt.Errorf("registering the worker's metrics: %w (give each Worker a registry of its own)", err)
		}
	}
	return m, nil
}

// stageMetrics are the metrics of one stage, resolved once: the hot path
// then makes no label lookups.
type stageMetrics struct {
	claimed, claimedAhead, succeeded prometheus.Counter
	leasesLost, fenced               prometheus.Counter
	slots                            prometheus.Gauge
	handlerSeconds, pickupSeconds    prometheus.Observer
	claimSeconds, completionSeconds  prometheus.Observer
}

func (m *metrics) stage(queue string) stageMetrics {
	return stageMetrics{
		claimed:           m.claimed.WithLabelValues(queue),
		claimedAhead:      m.claimedAhead.WithLabelValues(queue),
		succeeded:         m.finished.WithLabelValues(queue, "succeeded"),
		leasesLost:        m.leasesLost.WithLabelValues(queue),
		fenced:            m.fenced.WithLabelValues(queue),
		slots:             m.slots.WithLabelValues(queue),
		handlerSeconds:    m.handlerSeconds.WithLabelValues(queue),
		pickupSeconds:     m.pickupSeconds.WithLabelValues(queue),
		claimSeconds:      m.claimSeconds.WithLabelValues(queue),
		completionSeconds: m.completionSeconds.WithLabelValues(queue),
	}
}
