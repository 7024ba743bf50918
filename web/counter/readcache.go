package counter

import (
	"sync"
	"time"

	"jetfleet/analytics/counterdb"
)

// readCache keeps computed read answers so a repeated read (a dashboard
// polling the same range) costs no ClickHouse query. An answer is stored
// with the freshness of its video's partition read BEFORE the query ran, and
// is served only while that partition has reported no newer flush: every
// event the worker acknowledged up to that freshness is in the answer, and
// nothing newer is known to be in ClickHouse, so the stated fresh_until
// stays true. maxAge bounds what changes ClickHouse without a flush
// (`jetfleet counter rebuild`) could leave stale.
type readCache struct {
	mu      sync.Mutex
	entries map[readKey]readEntry
	max     int
	maxAge  time.Duration
}

// readKey is everything an answer depends on; the tenant keeps tenants
// apart. Start and End are already truncated to the minute.
type readKey struct {
	tenant, video, typ, step string
	start, end               int64
}

type readEntry struct {
	fresh  time.Time // the partition freshness the answer was computed under
	stored time.Time
	totals counterdb.Totals
	series []counterdb.Point
}

func newReadCache(max int, maxAge time.Duration) *readCache {
	return &readCache{entries: make(map[readKey]readEntry), max: max, maxAge: maxAge}
}

// get returns the answer stored for k under freshness fresh, if still valid.
func (c *readCache) get(k readKey, fresh, now time.Time) (readEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return readEntry{}, false
	}
	if !e.fresh.Equal(fresh) || now.Sub(e.stored) > c.maxAge {
		delete(c.entries, k)
		return readEntry{}, false
	}
	return e, true
}

// put stores an answer computed under freshness fresh. When full it drops
// an arbitrary entry (map order): no bookkeeping on the read path.
func (c *readCache) put(k readKey, e readEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for old := range c.entries {
			delete(c.entries, old)
			break
		}
	}
	c.entries[k] = e
}
