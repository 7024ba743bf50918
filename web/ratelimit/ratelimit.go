// Package ratelimit limits how often one key (a client address, an email
// address, an API key) may do something, with a token bucket per key. Buckets
// of keys not seen for a while are forgotten, so memory stays bounded by the
// number of recently active keys.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed holds one token bucket per key.
type Keyed struct {
	every time.Duration
	burst int
	idle  time.Duration
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New allows each key burst actions at once and then one per every.
func New(every time.Duration, burst int) *Keyed {
	return &Keyed{every: every, burst: burst, idle: max(10*time.Minute, every*time.Duration(burst)*2), now: time.Now, buckets: map[string]*bucket{}}
}

// Allow reports whether key may act now, and spends a token if so.
func (k *Keyed) Allow(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if now.Sub(k.lastSweep) > k.idle {
		for key, b := range k.buckets {
			if now.Sub(b.seen) > k.idle {
				delete(k.buckets, key)
			}
		}
		k.lastSweep = now
	}
	b, ok := k.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Every(k.every), k.burst)}
		k.buckets[key] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}
