package live

import (
	"context"
	"sync"
	"time"

	"jetfleet/internal/events"
)

// memberCache remembers for a while who a signed-in user is in an event,
// for heartbeats: 15,000 participants beat 250 times a second, and finding
// a participant's registration lists a KV index (an ephemeral consumer on
// the server) each time. The event itself is read fresh on every beat (one
// KV get), so a change of times or hosts applies at once; a registration
// cancelled meanwhile stops counting within memberTTL.
type memberCache struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[memberKey]cachedMember
}

type memberKey struct{ eid, uid, email string }

type cachedMember struct {
	m     events.Member
	until time.Time
}

const (
	memberTTL = time.Minute
	// memberCacheMax bounds the cache; past it, expired entries go, and if
	// that is not enough, all of them (they are found again).
	memberCacheMax = 100_000
)

func newMemberCache(now func() time.Time) *memberCache {
	return &memberCache{now: now, m: map[memberKey]cachedMember{}}
}

// member returns who (uid, email) is in event eid at this moment, with the
// event as it is now; errors as events.Service.Member.
func (c *memberCache) member(ctx context.Context, svc *events.Service, eid, uid, email string) (events.Member, events.Event, error) {
	k := memberKey{eid, uid, email}
	now := c.now()
	c.mu.Lock()
	hit, ok := c.m[k]
	c.mu.Unlock()
	if !ok || now.After(hit.until) {
		m, e, err := svc.Member(ctx, eid, uid, email)
		if err == nil {
			c.put(k, cachedMember{m: m, until: now.Add(memberTTL)}, now)
		}
		return m, e, err
	}
	e, err := svc.PublicEvent(ctx, eid)
	if err != nil {
		return events.Member{}, events.Event{}, err
	}
	m := hit.m
	m.Admin = e.IsAdmin(m.UserID, m.Email)
	if !m.Admin && m.RegistrationID == "" {
		// A host removed since: no longer a member.
		c.mu.Lock()
		delete(c.m, k)
		c.mu.Unlock()
		return events.Member{}, e, events.ErrNotMember
	}
	return m, e, nil
}

func (c *memberCache) put(k memberKey, v cachedMember, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= memberCacheMax {
		for key, x := range c.m {
			if now.After(x.until) {
				delete(c.m, key)
			}
		}
		if len(c.m) >= memberCacheMax {
			clear(c.m)
		}
	}
	c.m[k] = v
}
