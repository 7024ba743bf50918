package enricher

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"jetfleet/subjects"
)

// metrics are the Enricher's own counters, beside the runtime's.
type metrics struct {
	emitted *prometheus.CounterVec // by kind
	invalid *prometheus.CounterVec // by kind, dead-lettered
	lessons *prometheus.CounterVec // by enrichment status
	stale   *prometheus.CounterVec // by kind: redelivered state events not re-applied
	parked  prometheus.Counter
	hold    *prometheus.HistogramVec // by kind: how long held-back events waited
	cache   []prometheus.Collector

	// The hot series, looked up once instead of per event.
	emittedBy map[string]prometheus.Counter
	lessonsBy map[string]prometheus.Counter
}

// emit is the emitted counter of kind.
func (m *metrics) emit(kind string) prometheus.Counter {
	if c, ok := m.emittedBy[kind]; ok {
		return c
	}
	return m.emitted.WithLabelValues(kind)
}

// held is the hold-time histogram of kind.
func (m *metrics) held(kind string) prometheus.Observer { return m.hold.WithLabelValues(kind) }

// lesson is the lessons counter of an enrichment status.
func (m *metrics) lesson(status string) prometheus.Counter {
	if c, ok := m.lessonsBy[status]; ok {
		return c
	}
	return m.lessons.WithLabelValues(status)
}

func newMetrics(store *Store) *metrics {
	m := &metrics{
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_enricher_emitted_total", Help: "Events published to OUTPUT, by kind.",
		}, []string{"kind"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_enricher_invalid_total", Help: "Invalid events dead-lettered, by kind.",
		}, []string{"kind"}),
		lessons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_enricher_lessons_total", Help: "Lessons emitted, by enrichment status (complete, missing_user, missing_subscription).",
		}, []string{"enrichment"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_enricher_stale_total", Help: "State events older than the stored state (redeliveries), passed through without re-applying.",
		}, []string{"kind"}),
		parked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetfleet_enricher_parked_total", Help: "Times a lesson was held back for a late user or subscription (ENRICHER_HOLD).",
		}),
		hold: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetfleet_enricher_hold_seconds",
			Help:    "Time from INPUT to output of events held back (ENRICHER_HOLD): held lessons and their users' later events, by kind.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300},
		}, []string{"kind"}),
		cache: []prometheus.Collector{
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "jetfleet_enricher_cache_hits_total", Help: "State reads served by the in-process cache.",
			}, func() float64 { h, _ := store.CacheStats(); return float64(h) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "jetfleet_enricher_cache_misses_total", Help: "State reads that went to KV.",
			}, func() float64 { _, m := store.CacheStats(); return float64(m) }),
		},
		emittedBy: map[string]prometheus.Counter{},
		lessonsBy: map[string]prometheus.Counter{},
	}
	for _, k := range subjects.EnricherKinds {
		m.emittedBy[k] = m.emitted.WithLabelValues(k)
	}
	for _, st := range enrichmentStatuses {
		m.lessonsBy[st] = m.lessons.WithLabelValues(st)
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range append([]prometheus.Collector{m.emitted, m.invalid, m.lessons, m.stale, m.parked, m.hold}, m.cache...) {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Stats is a snapshot of the Enricher's counters.
type Stats struct {
	Emitted    map[string]uint64 // by kind
	Invalid    map[string]uint64 // by kind
	Lessons    map[string]uint64 // by enrichment status
	Parked     uint64
	Held       uint64 // events that came out after being held back
	CacheHits  uint64
	CacheMiss  uint64
	StaleState uint64
}

func (m *metrics) stats() Stats {
	s := Stats{Emitted: map[string]uint64{}, Invalid: map[string]uint64{}, Lessons: map[string]uint64{}}
	for _, k := range subjects.EnricherKinds {
		s.Emitted[k] = counterValue(m.emitted.WithLabelValues(k))
		s.Invalid[k] = counterValue(m.invalid.WithLabelValues(k))
		s.StaleState += counterValue(m.stale.WithLabelValues(k))
	}
	for _, st := range enrichmentStatuses {
		s.Lessons[st] = counterValue(m.lessons.WithLabelValues(st))
	}
	s.Parked = counterValue(m.parked)
	for _, k := range subjects.EnricherKinds {
		var d dto.Metric
		if err := m.held(k).(prometheus.Metric).Write(&d); err == nil {
			s.Held += d.GetHistogram().GetSampleCount()
		}
	}
	return s
}

var enrichmentStatuses = []string{subjects.EnrichmentComplete, subjects.EnrichmentMissingUser, subjects.EnrichmentMissingSubscription}

func counterValue(c prometheus.Counter) uint64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return uint64(d.GetCounter().GetValue())
}
