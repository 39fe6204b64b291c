package worker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics holds the worker's Prometheus metrics. `baton worker
// --metrics-addr` serves it, and `baton dev` adds it to the API's /metrics.
// It is shared by every Worker of the process.
var Metrics = prometheus.NewRegistry()

var (
	factory = promauto.With(Metrics)

	metricClaimed = factory.NewCounterVec(prometheus.CounterOpts{
		Name: "baton_jobs_claimed_total",
		Help: "Jobs claimed by this process.",
	}, []string{"queue"})
	metricFinished = factory.NewCounterVec(prometheus.CounterOpts{
		Name: "baton_jobs_finished_total",
		Help: "Attempts this process recorded, by outcome: succeeded, retrying or dead.",
	}, []string{"queue", "outcome"})
	metricLeasesLost = factory.NewCounterVec(prometheus.CounterOpts{
		Name: "baton_leases_lost_total",
		Help: "Handlers stopped because their lease moved on (expired and reaped, or canceled).",
	}, []string{"queue"})
	metricFenced = factory.NewCounterVec(prometheus.CounterOpts{
		Name: "baton_writes_fenced_total",
		Help: "Completions and failures rejected by the lease fence: a zombie's write that changed nothing.",
	}, []string{"queue"})
	metricHandlerSeconds = factory.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "baton_handler_duration_seconds",
		Help:    "How long handlers ran, whatever their outcome.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12), // 0.5ms .. ~35min
	}, []string{"queue"})
	metricPickupSeconds = factory.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "baton_pickup_latency_seconds",
		Help:    "From when a job was due (run_at) to its claim, in database time.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
	}, []string{"queue"})
	// The hot path's two statements, timed by the worker (round trip
	// included): the first place a slow or bloated database shows. Fine
	// buckets (each 1.32 times the last), so that a p99 read from them moves
	// when the statement does.
	metricClaimSeconds = factory.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "baton_claim_duration_seconds",
		Help:    "How long claim statements took, from the worker, round trip included.",
		Buckets: statementBuckets,
	}, []string{"queue"})
	metricCompletionSeconds = factory.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "baton_completion_duration_seconds",
		Help:    "How long grouped completion statements took (hand-offs included), from the worker.",
		Buckets: statementBuckets,
	}, []string{"queue"})
)

var statementBuckets = prometheus.ExponentialBucketsRange(0.0002, 10, 40) // 0.2 ms .. 10 s

// stageMetrics are the metrics of one stage, resolved once: the hot path
// then makes no label lookups.
type stageMetrics struct {
	claimed, succeeded, leasesLost, fenced prometheus.Counter
	handlerSeconds, pickupSeconds          prometheus.Observer
	claimSeconds, completionSeconds        prometheus.Observer
}

func newStageMetrics(queue string) stageMetrics {
	return stageMetrics{
		claimed:           metricClaimed.WithLabelValues(queue),
		succeeded:         metricFinished.WithLabelValues(queue, "succeeded"),
		leasesLost:        metricLeasesLost.WithLabelValues(queue),
		fenced:            metricFenced.WithLabelValues(queue),
		handlerSeconds:    metricHandlerSeconds.WithLabelValues(queue),
		pickupSeconds:     metricPickupSeconds.WithLabelValues(queue),
		claimSeconds:      metricClaimSeconds.WithLabelValues(queue),
		completionSeconds: metricCompletionSeconds.WithLabelValues(queue),
	}
}
