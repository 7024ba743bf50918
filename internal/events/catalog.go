package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Catalog is the in-memory view of live events that the public browse page
// reads: every edge keeps its own, current by watching event.* in the
// catalog bucket, so a browse request never scans the bucket.
type Catalog struct {
	mu    sync.RWMutex
	live  map[string]Event
	ready chan struct{}
	log   *slog.Logger
}

// WatchCatalog starts the view; it follows the bucket until ctx ends.
// It returns once the current state is loaded.
func WatchCatalog(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Catalog, error) {
	kv, err := js.KeyValue(ctx, subjects.EventsCatalogBucket)
	if err != nil {
		return nil, fmt.Errorf("open events catalog bucket: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Catalog{live: map[string]Event{}, ready: make(chan struct{}), log: log}
	w, err := kv.Watch(ctx, "event.*")
	if err != nil {
		return nil, fmt.Errorf("watch events catalog: %w", err)
	}
	go c.follow(ctx, w)
	select {
	case <-c.ready:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Catalog) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer w.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // end of the initial values
				if initial {
					initial = false
					close(c.ready)
				}
				continue
			}
			c.apply(e)
		}
	}
}

func (c *Catalog) apply(e jetstream.KeyValueEntry) {
	id := strings.TrimPrefix(e.Key(), "event.")
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(c.live, id)
		return
	}
	var ev Event
	if err := json.Unmarshal(e.Value(), &ev); err != nil {
		c.log.Warn("undecodable event in catalog", "key", e.Key(), "err", err)
		return
	}
	if ev.Status == Live {
		c.live[id] = ev
	} else {
		delete(c.live, id)
	}
}

// Filter narrows the browse list. Zero values match everything.
type Filter struct {
	BusinessType string
	From, To     time.Time // events overlapping [From, To)
	Limit        int
}

// Upcoming lists live events that have not ended at now and match f,
// soonest first.
func (c *Catalog) Upcoming(now time.Time, f Filter) []Event {
	c.mu.RLock()
	var out []Event
	for _, e := range c.live {
		if e.Past(now) {
			continue
		}
		if f.BusinessType != "" && e.BusinessType != f.BusinessType {
			continue
		}
		if !f.From.IsZero() && !e.End.After(f.From) {
			continue
		}
		if !f.To.IsZero() && !e.Start.Before(f.To) {
			continue
		}
		out = append(out, e)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].ID < out[j].ID
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// Len is the number of live events in the view (ended ones included).
func (c *Catalog) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.live)
}

// HostedBy lists the live events that have not ended at now and have the
// (normalised) address email among their hosts, soonest first: the
// events a host finds on "my events".
func (c *Catalog) HostedBy(email string, now time.Time) []Event {
	email = strings.ToLower(strings.TrimSpace(email))
	c.mu.RLock()
	var out []Event
	for _, e := range c.live {
		if email != "" && !e.Past(now) && slices.Contains(e.Hosts, email) {
			out = append(out, e)
		}
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}
