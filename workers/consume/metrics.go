package consume

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the per-role counters every consumer reports. One Metrics is
// shared by all consumers of a process; the role is a label.
type Metrics struct {
	processed    *prometheus.CounterVec
	failed       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	pending      *prometheus.GaugeVec
}

// NewMetrics registers the consumer metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_worker_processed_total",
			Help: "Messages handled successfully and acknowledged.",
		}, []string{"role"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_worker_failed_total",
			Help: "Handler attempts that failed (retried or dead-lettered).",
		}, []string{"role"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_worker_dead_lettered_total",
			Help: "Messages copied to the DLQ stream and terminated.",
		}, []string{"role"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetfleet_worker_handler_seconds",
			Help:    "Time spent in the handler per message.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"role"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetfleet_worker_consumer_pending",
			Help: "Messages waiting in the consumer, as last seen by this worker.",
		}, []string{"role"}),
	}
	reg.MustRegister(m.processed, m.failed, m.deadLettered, m.latency, m.pending)
	return m
}

// forRole makes every series of role exist from the start, at zero, so a
// dashboard (and an alert on failures) sees the role before its first
// failure rather than no data.
func (m *Metrics) forRole(role string) {
	m.processed.WithLabelValues(role)
	m.failed.WithLabelValues(role)
	m.deadLettered.WithLabelValues(role)
	m.latency.WithLabelValues(role)
	m.pending.WithLabelValues(role)
}

// Processed is the counter of messages role acknowledged.
func (m *Metrics) Processed(role string) prometheus.Counter { return m.processed.WithLabelValues(role) }

// DeadLettered is the counter of messages role dead-lettered.
func (m *Metrics) DeadLettered(role string) prometheus.Counter {
	return m.deadLettered.WithLabelValues(role)
}
