package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// Organiser returns the organiser profile of a user (empty, not an error,
// before they connect anything).
func (s *Service) Organiser(ctx context.Context, uid string) (Organiser, error) {
	o, _, err := getJSON[Organiser](ctx, s.catalog, organiserKey(uid))
	if errors.Is(err, ErrNotFound) {
		return Organiser{UserID: uid}, nil
	}
	return o, err
}

// SetStripeAccount records the organiser's connected account and whether
// it can take charges yet.
func (s *Service) SetStripeAccount(ctx context.Context, uid, email, account string, ready bool) (Organiser, error) {
	for {
		o, rev, err := getJSON[Organiser](ctx, s.catalog, organiserKey(uid))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Organiser{}, err
		}
		wasReady := o.StripeReady && o.StripeAccountID == account
		// The saved fee card stays; the rest is Stripe's answer.
		o = Organiser{UserID: uid, Email: email, StripeAccountID: account, StripeReady: ready, FeeCustomerID: o.FeeCustomerID, FeePaymentMethod: o.FeePaymentMethod, Updated: s.now()}
		b, _ := json.Marshal(o)
		if rev == 0 {
			_, err = s.catalog.Create(ctx, organiserKey(uid), b)
		} else {
			_, err = s.catalog.Update(ctx, organiserKey(uid), b, rev)
		}
		if kvjson.Conflict(err) {
			continue // changed meanwhile
		}
		if err != nil {
			return Organiser{}, fmt.Errorf("save organiser %s: %w", uid, err)
		}
		if ready {
			// Published again on every ready return from Stripe (deduplicated
			// by its id), so one that failed is made up for.
			if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindStripeLinked, EventID: "-", OrganiserID: uid}, "stripelinked:"+uid+":"+account); err != nil && !wasReady {
				return o, err
			}
		}
		return o, nil
	}
}

// OrganiserEvents lists organiser uid's events, soonest first.
func (s *Service) OrganiserEvents(ctx context.Context, uid string) ([]Event, error) {
	keys, err := listKeys(ctx, s.catalog, "org."+uid+".*")
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, k := range keys {
		eid := k[strings.LastIndexByte(k, '.')+1:]
		e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if e.OrganiserID == uid {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// Roster is what an organiser sees of their event's registrations.
type Roster struct {
	// Registrations their participants confirmed, oldest first.
	Registrations []Registration
	// Awaiting counts registrations still waiting for their participant
	// to confirm: who they are is not shown, since anyone can type anyone's
	// name and address into the form.
	Awaiting int
}

// EventRegistrations returns the roster of organiser uid's event.
func (s *Service) EventRegistrations(ctx context.Context, uid, eid string) (Roster, error) {
	if _, err := s.EventFor(ctx, uid, eid); err != nil {
		return Roster{}, err
	}
	keys, err := listKeys(ctx, s.regs, "reg."+eid+".*")
	if err != nil {
		return Roster{}, err
	}
	var out Roster
	for _, k := range keys {
		r, _, err := getJSON[Registration](ctx, s.regs, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Roster{}, err
		}
		switch {
		case !r.Confirmed.IsZero():
			out.Registrations = append(out.Registrations, r)
		case r.Status == Pending:
			out.Awaiting++
		}
		// Cancelled before confirming: nobody agreed to anything; not shown.
	}
	sort.Slice(out.Registrations, func(i, j int) bool { return out.Registrations[i].Created.Before(out.Registrations[j].Created) })
	return out, nil
}
