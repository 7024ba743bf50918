package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"jetfleet/internal/ids"
	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// CreateEvent saves a new draft for organiser uid.
func (s *Service) CreateEvent(ctx context.Context, uid string, in EventInput) (Event, error) {
	now := s.now()
	e := Event{ID: ids.New(), OrganiserID: uid, Status: Draft, Created: now, Updated: now, Tickets: []TicketType{}}
	if err := in.apply(&e, now); err != nil {
		return Event{}, err
	}
	b, _ := json.Marshal(e)
	// The seat counter first, then the event, then the index: a crash in
	// between leaves at worst an unused counter, never a half event.
	if _, err := s.catalog.Create(ctx, seatsKey(e.ID), mustJSON(seats{ByTicket: map[string]int{}})); err != nil {
		return Event{}, fmt.Errorf("create seat counter: %w", err)
	}
	if _, err := s.catalog.Create(ctx, eventKey(e.ID), b); err != nil {
		return Event{}, fmt.Errorf("create event: %w", err)
	}
	if _, err := s.catalog.Put(ctx, orgIndexKey(uid, e.ID), nil); err != nil {
		return Event{}, fmt.Errorf("index event: %w", err)
	}
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindCreated, EventID: e.ID, OrganiserID: uid}, "created:"+e.ID); err != nil {
		return Event{}, err
	}
	return e, nil
}

// EventFor returns an event of organiser uid; another organiser's event is
// ErrNotFound, so its existence does not leak.
func (s *Service) EventFor(ctx context.Context, uid, eid string) (Event, error) {
	e, _, err := s.ownEvent(ctx, uid, eid)
	return e, err
}

func (s *Service) ownEvent(ctx context.Context, uid, eid string) (Event, uint64, error) {
	if !ids.Valid(eid) {
		return Event{}, 0, ErrNotFound
	}
	e, rev, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return Event{}, 0, err
	}
	if e.OrganiserID != uid {
		return Event{}, 0, ErrNotFound
	}
	return e, rev, nil
}

// change applies f to organiser uid's event under compare-and-set, retrying
// when someone else changed it meanwhile.
func (s *Service) change(ctx context.Context, uid, eid string, f func(e *Event) error) (Event, error) {
	for {
		e, rev, err := s.ownEvent(ctx, uid, eid)
		if err != nil {
			return Event{}, err
		}
		if err := f(&e); err != nil {
			return Event{}, err
		}
		e.Updated = s.now()
		if _, err := s.catalog.Update(ctx, eventKey(eid), mustJSON(e), rev); err != nil {
			if kvjson.Conflict(err) {
				continue
			}
			return Event{}, fmt.Errorf("save event %s: %w", eid, err)
		}
		return e, nil
	}
}

// UpdateEvent changes an event's details.
func (s *Service) UpdateEvent(ctx context.Context, uid, eid string, in EventInput) (Event, error) {
	if !ids.Valid(eid) {
		return Event{}, ErrNotFound
	}
	st, err := s.seats(ctx, eid)
	if err != nil {
		return Event{}, err
	}
	e, err := s.change(ctx, uid, eid, func(e *Event) error {
		if err := in.apply(e, s.now()); err != nil {
			return err
		}
		if e.Capacity < st.Total {
			return &ValidationError{Fields: map[string]string{"capacity": fmt.Sprintf("%d seats are already taken; capacity cannot be lower.", st.Total)}}
		}
		return nil
	})
	if err == nil {
		err = s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindUpdated, EventID: eid, OrganiserID: uid}, "updated:"+eid+":"+e.Updated.Format(time.RFC3339Nano))
	}
	if err == nil && e.Status == Live {
		// The end may have moved: the post-event schedule follows it.
		err = s.schedulePost(ctx, e, e.Updated)
	}
	return e, err
}

// AddTicketType adds a ticket type to an event.
func (s *Service) AddTicketType(ctx context.Context, uid, eid string, in TicketInput) (Event, error) {
	return s.change(ctx, uid, eid, func(e *Event) error {
		t, err := in.parse(*e)
		if err != nil {
			return err
		}
		if len(e.Tickets) >= MaxTicketTypes {
			return &ValidationError{Fields: map[string]string{"ticket_name": fmt.Sprintf("An event can have at most %d ticket types.", MaxTicketTypes)}}
		}
		if t.Paid() && e.Status == Live {
			o, err := s.Organiser(ctx, uid)
			if err != nil {
				return err
			}
			if !o.StripeReady {
				return &ValidationError{Fields: map[string]string{"price": ErrStripeRequired.Error()}}
			}
		}
		t.ID = ids.New()
		e.Tickets = append(e.Tickets, t)
		return nil
	})
}

// RemoveTicketType removes a ticket type nobody holds yet.
func (s *Service) RemoveTicketType(ctx context.Context, uid, eid, tid string) (Event, error) {
	if !ids.Valid(eid) || !ids.Valid(tid) {
		return Event{}, ErrNotFound
	}
	st, err := s.seats(ctx, eid)
	if err != nil {
		return Event{}, err
	}
	return s.change(ctx, uid, eid, func(e *Event) error {
		if st.ByTicket[tid] > 0 {
			return ErrTicketsSold
		}
		for i, t := range e.Tickets {
			if t.ID == tid {
				e.Tickets = append(e.Tickets[:i:i], e.Tickets[i+1:]...)
				return nil
			}
		}
		return ErrNotFound
	})
}

// Publish makes a draft live. It is refused while the event has no ticket
// types, or has paid ones and the organiser's Stripe account cannot take
// charges.
func (s *Service) Publish(ctx context.Context, uid, eid string) (Event, error) {
	o, err := s.Organiser(ctx, uid)
	if err != nil {
		return Event{}, err
	}
	e, err := s.change(ctx, uid, eid, func(e *Event) error {
		switch {
		case e.Status == Live:
			// Publishing again re-publishes the domain event (deduplicated),
			// in case the first one was not acknowledged.
			if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindPublished, EventID: eid, OrganiserID: uid}, "published:"+eid); err != nil {
				return err
			}
			// Likewise the post-event schedule (deduplicated by the
			// version it was set for).
			if err := s.schedulePost(ctx, *e, e.Updated); err != nil {
				return err
			}
			return ErrAlreadyLive
		case len(e.Tickets) == 0:
			return ErrNoTickets
		case e.HasPaidTickets() && !o.StripeReady:
			return ErrStripeRequired
		case e.Past(s.now()):
			return ErrEventOver
		}
		e.Status = Live
		e.Published = s.now()
		return nil
	})
	if err != nil {
		return Event{}, err
	}
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindPublished, EventID: eid, OrganiserID: uid}, "published:"+eid); err != nil {
		return Event{}, err
	}
	if err := s.schedulePost(ctx, e, e.Updated); err != nil {
		return Event{}, err
	}
	return e, nil
}
