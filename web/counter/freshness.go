package counter

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Freshness keeps, in memory, the time up to which every acknowledged event
// of each partition is in ClickHouse, fed by a watch of the
// COUNTER_FRESHNESS bucket that the partition owners write after each flush.
type Freshness struct {
	mu    sync.RWMutex
	until [subjects.CounterPartitions]time.Time
}

// WatchFreshness starts the watch; it stops when ctx ends.
func WatchFreshness(ctx context.Context, js jetstream.JetStream) (*Freshness, error) {
	kv, err := js.KeyValue(ctx, subjects.CounterFreshnessBucket)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", subjects.CounterFreshnessBucket, err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", subjects.CounterFreshnessBucket, err)
	}
	f := &Freshness{}
	go func() {
		defer w.Stop()
		for e := range w.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			p, err := strconv.Atoi(strings.TrimPrefix(e.Key(), "p."))
			if err != nil || p < 0 || p >= subjects.CounterPartitions {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
			if err != nil {
				continue
			}
			f.mu.Lock()
			if t.After(f.until[p]) {
				f.until[p] = t
			}
			f.mu.Unlock()
		}
	}()
	return f, nil
}

// Partition returns partition p's freshness, false when unknown.
func (f *Freshness) Partition(p int) (time.Time, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.until[p]
	return t, !t.IsZero()
}

// All returns the oldest freshness over every partition: every event
// acknowledged before it is readable.
func (f *Freshness) All() (time.Time, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	oldest := f.until[0]
	for _, t := range f.until[1:] {
		if t.Before(oldest) {
			oldest = t
		}
	}
	return oldest, !oldest.IsZero()
}
