package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Chunked is a shared limit for hot paths: like Shared it counts a key's
// actions per fixed window in RATELIMITS, so every edge spends from one
// allowance, but an edge reserves tokens in chunks (a twentieth of the
// limit, at most maxChunk) with one publish and spends them locally. An
// action costs a NATS round trip only once per chunk. Tokens an edge
// reserved and did not spend are lost to the others until the window ends,
// so across edges a key gets at most its limit per window, and at least
// the limit less one chunk per edge.
type Chunked struct {
	js     jetstream.JetStream
	scope  string
	window time.Duration
	now    func() time.Time

	mu     sync.Mutex
	grants map[string]*grant
	swept  int64 // the window whose grants alone are kept
}

// grant is what this edge holds of a key's current window.
type grant struct {
	start int64 // window start, Unix seconds
	left  int
	// spent: the shared count reached the limit; no more to reserve.
	spent bool
}

const maxChunk = 1000

// NewChunked returns a chunked limit named scope (as NewShared) counting
// over window.
func NewChunked(js jetstream.JetStream, scope string, window time.Duration) (*Chunked, error) {
	if _, err := NewShared(js, scope, 1, window); err != nil {
		return nil, err
	}
	return &Chunked{js: js, scope: scope, window: window, now: time.Now, grants: map[string]*grant{}}, nil
}

// Window is the window limits are counted over.
func (c *Chunked) Window() time.Duration { return c.window }

// Allow spends one of key's limit tokens of the current window. When none
// is left it returns false and how long until the next window. An error
// means the count could not be taken: callers refuse the action.
func (c *Chunked) Allow(ctx context.Context, key string, limit int) (bool, time.Duration, error) {
	if limit < 1 {
		return false, 0, fmt.Errorf("ratelimit %s: limit %d must be at least 1", c.scope, limit)
	}
	now := c.now()
	start := now.Truncate(c.window)
	retry := start.Add(c.window).Sub(now)
	g := c.take(key, start.Unix())
	if g == nil {
		return true, 0, nil
	}
	if g.spent {
		return false, retry, nil
	}
	chunk := min(max(limit/20, 1), maxChunk)
	total, err := incr(ctx, c.js, c.scope, key, start.Unix(), chunk)
	if err != nil {
		return false, 0, err
	}
	// Of this chunk, only what was still below the limit is ours.
	got := min(chunk, max(0, limit-int(total-int64(chunk))))
	c.mu.Lock()
	defer c.mu.Unlock()
	if total >= int64(limit) {
		g.spent = true
	}
	g.left += got
	if g.left == 0 {
		return false, retry, nil
	}
	g.left--
	return true, 0, nil
}

// take spends a local token of key if there is one (and returns nil), or
// returns the grant to refill.
func (c *Chunked) take(key string, start int64) *grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.swept != start {
		// A new window: earlier grants are worthless, so memory holds only
		// the keys active in this window.
		for k, g := range c.grants {
			if g.start != start {
				delete(c.grants, k)
			}
		}
		c.swept = start
	}
	g := c.grants[key]
	if g == nil || g.start != start {
		g = &grant{start: start}
		c.grants[key] = g
	}
	if g.left > 0 {
		g.left--
		return nil
	}
	return g
}
