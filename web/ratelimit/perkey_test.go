package ratelimit

import (
	"testing"
	"time"
)

func TestPerKeyLimiterUsesTheKeysRateOrTheDefaultAndBurstsAtLeastABatch(t *testing.T) {
	p := NewPerKey(2000, 1000)
	for _, c := range []struct {
		name      string
		hash      string
		limit     float64
		wantRate  float64
		wantBurst int
	}{
		{"no rate in the record", "a", 0, 2000, 2000},
		{"slow key", "b", 5, 5, 1000},
		{"fast key", "c", 5000, 5000, 5000},
	} {
		l := p.For(c.hash, c.limit)
		if float64(l.Limit()) != c.wantRate || l.Burst() != c.wantBurst {
			t.Errorf("%s: rate %v burst %d, want %v and %d", c.name, l.Limit(), l.Burst(), c.wantRate, c.wantBurst)
		}
	}
	if first := p.For("b", 5); p.For("b", 5) != first {
		t.Error("a key got a second limiter: its allowance would restart")
	}
	if !p.For("d", 1).AllowN(time.Now(), 1000) || p.For("d", 1).Allow() {
		t.Error("a key's burst was not spent by one full batch")
	}
}
