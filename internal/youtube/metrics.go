package youtube

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count what YouTube does to us, for /metrics. One Metrics may be
// shared by every client of a process; NewMetrics on a registry that already
// has them returns the registered ones.
type Metrics struct {
	refusals *prometheus.CounterVec
	opens    prometheus.Counter
	state    prometheus.Gauge
}

// NewMetrics registers the client metrics with reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_youtube_refusals_total",
			Help: "Responses in which YouTube refused us (bot check, consent wall, rate limit, sign-in wall), by kind.",
		}, []string{"kind"}),
		opens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetfleet_youtube_circuit_opens_total",
			Help: "Times the YouTube circuit breaker opened after repeated failures or refusals.",
		}),
		state: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetfleet_youtube_circuit_state",
			Help: "The YouTube circuit breaker's state now: 0 closed, 1 half-open (probing), 2 open (not calling YouTube).",
		}),
	}
	if reg == nil {
		return m
	}
	m.refusals = register(reg, m.refusals)
	// Every kind exists at zero, so a dashboard shows "none" rather than
	// "no data" until YouTube first refuses.
	for _, k := range []Refusal{RefusedBotCheck, RefusedSignIn, RefusedConsent, RefusedRateLimit} {
		m.refusals.WithLabelValues(string(k))
	}
	m.opens = register(reg, m.opens)
	m.state = register(reg, m.state)
	return m
}

// register registers c, or returns the collector already registered under
// its name (several clients in one process share them).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	return c
}

// Refusals is the refusal counter of kind.
func (m *Metrics) Refusals(kind Refusal) prometheus.Counter {
	return m.refusals.WithLabelValues(string(kind))
}
