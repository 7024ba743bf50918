package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/ids"
	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// schedulePost sets (or moves) event e's post-event schedule: a one-shot
// message schedule (@at e.End + PostDelay) on subjects.EventsPostStream
// that fires subjects.EventsPostFire for the post-event steps
// (accumulation, fee, summary mail, exports). The stream keeps one message
// per subject, so a new schedule replaces the previous one: moving the end
// moves the firing. version tells this schedule from the previous one for
// the duplicate window (with the end, the event's Updated instant): setting
// the same schedule again is deduplicated, moving the end back to an
// earlier value is not.
func (s *Service) schedulePost(ctx context.Context, e Event, version time.Time) error {
	at := e.End.Add(s.cfg.PostDelay)
	if now := s.cfg.Now(); !at.After(now) {
		// An end moved into the past: fire as soon as possible.
		at = now.Add(time.Second)
	}
	at = at.UTC().Truncate(time.Second)
	b, _ := json.Marshal(subjects.EventsPostFiring{EventID: e.ID, End: e.End, At: at})
	err := s.publishRetrying(ctx, subjects.EventsPostSchedule(e.ID), b,
		jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(subjects.EventsPostFire(e.ID)),
		jetstream.WithMsgID("postschedule:"+e.ID+":"+e.End.UTC().Format(time.RFC3339)+":"+version.UTC().Format(time.RFC3339Nano)))
	if err != nil {
		return fmt.Errorf("schedule post-event steps of %s: %w", e.ID, err)
	}
	return nil
}

// PostSchedule returns when event eid's post-event steps are scheduled to
// run and for which end, or ErrNotFound when none is set (a draft).
func (s *Service) PostSchedule(ctx context.Context, eid string) (subjects.EventsPostFiring, error) {
	st, err := s.js.Stream(ctx, subjects.EventsPostStream)
	if err != nil {
		return subjects.EventsPostFiring{}, fmt.Errorf("open %s: %w", subjects.EventsPostStream, err)
	}
	m, err := st.GetLastMsgForSubject(ctx, subjects.EventsPostSchedule(eid))
	if err != nil {
		return subjects.EventsPostFiring{}, ErrNotFound
	}
	var f subjects.EventsPostFiring
	if err := json.Unmarshal(m.Data, &f); err != nil {
		return f, fmt.Errorf("decode post-event schedule of %s: %w", eid, err)
	}
	return f, nil
}

// EventByID returns an event whatever its state, for the post-event steps
// (workers, not people: pages use EventFor or PublicEvent).
func (s *Service) EventByID(ctx context.Context, eid string) (Event, error) {
	if !ids.Valid(eid) {
		return Event{}, ErrNotFound
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	return e, err
}

// AllRegistrations returns every registration of event eid in any state,
// oldest first, for the post-event figures.
func (s *Service) AllRegistrations(ctx context.Context, eid string) ([]Registration, error) {
	if !ids.Valid(eid) {
		return nil, ErrNotFound
	}
	keys, err := listKeys(ctx, s.regs, "reg."+eid+".*")
	if err != nil {
		return nil, err
	}
	out := make([]Registration, 0, len(keys))
	for _, k := range keys {
		r, _, err := getJSON[Registration](ctx, s.regs, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Counts reports whether a registration counts as a participant who
// registered, for the fee and the figures: confirmed by its participant
// (and paid, for a paid ticket). Pending, cancelled, expired and refunded
// registrations do not.
func (r Registration) Counts() bool { return r.Status == Confirmed || r.Status == Paid }

// SetFeePaymentMethod records the card organiser uid saved for the
// platform fee (a Stripe customer of the platform and its payment method).
func (s *Service) SetFeePaymentMethod(ctx context.Context, uid, customer, paymentMethod string) (Organiser, error) {
	for {
		o, rev, err := getJSON[Organiser](ctx, s.catalog, organiserKey(uid))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Organiser{}, err
		}
		o.UserID, o.FeeCustomerID, o.FeePaymentMethod, o.Updated = uid, customer, paymentMethod, s.now()
		b, _ := json.Marshal(o)
		if rev == 0 {
			_, err = s.catalog.Create(ctx, organiserKey(uid), b)
		} else {
			_, err = s.catalog.Update(ctx, organiserKey(uid), b, rev)
		}
		if kvjson.Conflict(err) {
			continue
		}
		if err != nil {
			return Organiser{}, fmt.Errorf("save organiser %s: %w", uid, err)
		}
		return o, nil
	}
}
