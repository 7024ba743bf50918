package enricher

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Rates samples the Enricher's streams every few seconds, so the page shows
// live input, output and dead-letter rates without a metrics server.
type Rates struct {
	js       jetstream.JetStream
	interval time.Duration

	mu      sync.Mutex
	samples []rateSample // oldest first, at most keep
}

type rateSample struct {
	at                  time.Time
	input, output, dlqs uint64 // message counts ever stored (last sequence) and dead letters
}

const keepSamples = 16

// RateView is what the page shows: events per second over the last window.
type RateView struct {
	Input, Output, DLQ float64
	Window             time.Duration
	Totals             rateSample
	Ready              bool // false until two samples exist
}

// NewRates returns a sampler; Run feeds it.
func NewRates(js jetstream.JetStream, interval time.Duration) *Rates {
	return &Rates{js: js, interval: interval}
}

// Run samples until ctx ends.
func (r *Rates) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Rates) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s := rateSample{at: time.Now()}
	if _, taken, err := subjects.EnricherInputStats(ctx, r.js); err == nil {
		s.input = taken
	}
	if st, err := r.js.Stream(ctx, subjects.EnricherOutputStream); err == nil {
		s.output = st.CachedInfo().State.LastSeq
	}
	if st, err := r.js.Stream(ctx, subjects.DLQStream); err == nil {
		// Dead letters are by origin stream: one per partition.
		if info, err := st.Info(ctx, jetstream.WithSubjectFilter(subjects.DLQAll)); err == nil {
			for subj, n := range info.State.Subjects {
				if subjects.IsEnricherPartitionStream(subjects.DLQOriginStream(subj)) {
					s.dlqs += n
				}
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
	if len(r.samples) > keepSamples {
		r.samples = r.samples[1:]
	}
}

// View returns the rates over the sampled window.
func (r *Rates) View() RateView {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < 2 {
		return RateView{}
	}
	first, last := r.samples[0], r.samples[len(r.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	per := func(a, b uint64) float64 {
		if b < a || dt <= 0 {
			return 0
		}
		return float64(b-a) / dt
	}
	return RateView{
		Input: per(first.input, last.input), Output: per(first.output, last.output), DLQ: per(first.dlqs, last.dlqs),
		Window: last.at.Sub(first.at).Round(time.Second), Totals: last, Ready: true,
	}
}
