package events

import (
	"context"
	"errors"
	"time"
)

// MemberRecheck is how old a long-lived connection's membership check may
// be: a chat or desk socket lives for the whole event, and a participant
// who cancelled or was moved to another team, or a host removed, must
// not keep using it; checking at most once a minute keeps the
// registration reads off the message path.
const MemberRecheck = time.Minute

// Recheck keeps a long-lived connection's member confirmed: Still reads
// the event again once the last check is Every old, so every socket uses
// the one rule. Make it with NewRecheck; it is not safe for concurrent use.
type Recheck struct {
	svc     *Service
	every   time.Duration
	now     func() time.Time
	allowed func(ctx context.Context, m Member, e Event) (bool, error)
	m       Member
	e       Event
	checked time.Time
}

// NewRecheck starts the checks of member m of event e, confirmed now.
// allowed says whether the member, read again, may still use the
// connection (its room, its team, being a host); nil lets any member.
// every <= 0 means MemberRecheck; now nil means time.Now.
func (s *Service) NewRecheck(m Member, e Event, every time.Duration, now func() time.Time, allowed func(ctx context.Context, m Member, e Event) (bool, error)) *Recheck {
	if every <= 0 {
		every = MemberRecheck
	}
	if now == nil {
		now = time.Now
	}
	return &Recheck{svc: s, every: every, now: now, allowed: allowed, m: m, e: e, checked: now()}
}

// Every is how often Still reads the event again.
func (c *Recheck) Every() time.Duration { return c.every }

// Member returns the member and event as last confirmed.
func (c *Recheck) Member() (Member, Event) { return c.m, c.e }

// Still tells whether the member may still use the connection, reading
// the event again when the last check is Every old. An error means it
// could not tell (the caller keeps the connection and tries later).
func (c *Recheck) Still(ctx context.Context) (bool, error) {
	now := c.now()
	if now.Sub(c.checked) < c.every {
		return true, nil
	}
	m, e, err := c.svc.Member(ctx, c.m.EventID, c.m.UserID, c.m.Email)
	if errors.Is(err, ErrNotMember) || errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if c.allowed != nil {
		ok, err := c.allowed(ctx, m, e)
		if err != nil || !ok {
			return false, err
		}
	}
	c.m, c.e, c.checked = m, e, now
	return true, nil
}
