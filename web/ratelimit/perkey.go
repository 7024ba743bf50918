package ratelimit

import (
	"sync"

	"golang.org/x/time/rate"
)

// PerKey holds one token bucket per API key, in this process: the write
// limits of the Counter and Enricher ingests, where a shared count would
// cost a round trip per request. Unlike Shared and Chunked, each edge
// allows a key its rate; the read limits that must hold across edges use
// Chunked.
type PerKey struct {
	defaultRate float64
	minBurst    int

	mu sync.Mutex
	by map[string]*rate.Limiter // by key hash
}

// NewPerKey makes the limiters of keys whose record sets no rate allow
// defaultRate per second; every key may burst at least minBurst (one full
// batch), or its rate if higher.
func NewPerKey(defaultRate float64, minBurst int) *PerKey {
	return &PerKey{defaultRate: defaultRate, minBurst: minBurst, by: map[string]*rate.Limiter{}}
}

// For returns the limiter of the key with hash, made on first use with
// limit per second (0 or less: the default). A key keeps its first limiter
// while this process runs.
func (p *PerKey) For(hash string, limit float64) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.by[hash]
	if l == nil {
		if limit <= 0 {
			limit = p.defaultRate
		}
		l = rate.NewLimiter(rate.Limit(limit), int(max(limit, float64(p.minBurst))))
		p.by[hash] = l
	}
	return l
}
