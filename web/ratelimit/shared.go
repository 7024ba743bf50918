// Package ratelimit limits how often one key (a client address, an inbox,
// a user, an API key) may do something, counted in JetStream so that every
// edge shares one count: a client cannot multiply its allowance by the
// number of edges behind the load balancer. Shared takes one publish per
// action (sign-in, registration, key creation); Chunked reserves the count
// in chunks for hot paths (Counter API reads).
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Shared allows each key at most limit actions per window, counted in
// JetStream (subjects.RateLimitStream) so that every edge shares the count:
// a client cannot multiply its allowance by the number of edges behind the
// load balancer. Windows are fixed (aligned to the epoch), so a key can
// spend up to twice its limit across a window boundary; for abuse limits
// that is fine, and it costs one publish per action.
type Shared struct {
	js     jetstream.JetStream
	scope  string
	limit  int
	window time.Duration
	now    func() time.Time
}

// NewShared returns a limit named scope (a subject token: letters, digits,
// '-' or '_') of limit actions per window (at most an hour).
func NewShared(js jetstream.JetStream, scope string, limit int, window time.Duration) (*Shared, error) {
	if window <= 0 || window > subjects.RateLimitMaxWindow || window%time.Second != 0 {
		return nil, fmt.Errorf("ratelimit %s: window %s must be whole seconds, at most %s", scope, window, subjects.RateLimitMaxWindow)
	}
	if limit < 1 {
		return nil, fmt.Errorf("ratelimit %s: limit %d must be at least 1", scope, limit)
	}
	for _, r := range scope {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return nil, fmt.Errorf("ratelimit: scope %q must be lower-case letters, digits, - or _", scope)
		}
	}
	return &Shared{js: js, scope: scope, limit: limit, window: window, now: time.Now}, nil
}

// Allow counts one action of key and reports whether it is within the
// limit. An error means the count could not be taken (NATS unreachable):
// callers refuse the action rather than let it through unlimited.
func (s *Shared) Allow(ctx context.Context, key string) (bool, error) {
	n, err := incr(ctx, s.js, s.scope, key, s.now().Truncate(s.window).Unix(), 1)
	if err != nil {
		return false, err
	}
	return n <= int64(s.limit), nil
}

// incr adds n to the count of key in scope for the window starting at
// start and returns the new total: one publish, whose acknowledgement
// carries the total.
func incr(ctx context.Context, js jetstream.JetStream, scope, key string, start int64, n int) (int64, error) {
	sum := sha256.Sum256([]byte(key))
	subj := subjects.RateLimitSubject(scope, hex.EncodeToString(sum[:12]), start)
	msg := nats.NewMsg(subj)
	msg.Header.Set("Nats-Incr", "+"+strconv.Itoa(n))
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", scope, err)
	}
	total, err := strconv.ParseInt(ack.Value, 10, 64)
	if err != nil {
		return 0, errors.New("count " + scope + ": the server returned no counter total (is RATELIMITS a counter stream? run jetfleet migrate)")
	}
	return total, nil
}
