package events

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"unicode/utf8"

	"jetfleet/internal/ids"
	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// PublicEvent returns a live event.
func (s *Service) PublicEvent(ctx context.Context, eid string) (Event, error) {
	if !ids.Valid(eid) {
		return Event{}, ErrNotFound
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return Event{}, err
	}
	if e.Status != Live {
		return Event{}, ErrNotFound
	}
	return e, nil
}

// Register records a pending registration. The participant confirms it
// through a magic link mailed by the caller.
func (s *Service) Register(ctx context.Context, eid string, in RegistrationInput) (Registration, error) {
	e, err := s.PublicEvent(ctx, eid)
	if err != nil {
		return Registration{}, err
	}
	now := s.now()
	var v ValidationError
	t, ok := e.Ticket(in.TicketTypeID)
	if !ok {
		v.add("ticket", "Choose a ticket.")
	} else if !t.OnSale(now, e.Start) {
		v.add("ticket", ErrNotOnSale.Error())
	}
	name := strings.TrimSpace(in.Name)
	if n := utf8.RuneCountInString(name); n == 0 || n > MaxName {
		v.add("name", "Give your name (up to 120 characters).")
	} else if !oneLine(name) {
		v.add("name", "Give your name on one line, without line breaks or tabs.")
	}
	email, err := normaliseEmail(in.Email)
	if err != nil {
		v.add("email", "That does not look like an email address.")
	}
	if !in.Terms {
		v.add("terms", "You need to accept the terms to register.")
	}
	if !in.DataSharing {
		v.add("data_sharing", "Registration shares your name and email with the organiser; agree to it to register.")
	}
	if e.Past(now) {
		v.add("ticket", ErrEventOver.Error())
	}
	if err := v.orNil(); err != nil {
		return Registration{}, err
	}
	if av, err := s.Available(ctx, e); err == nil && av[t.ID] == 0 {
		return Registration{}, &ValidationError{Fields: map[string]string{"ticket": "This ticket is sold out."}}
	}
	// No consent yet: whoever submitted the form may not be the person
	// whose address it is. Confirm records it.
	r := Registration{
		ID: ids.New(), EventID: eid, TicketTypeID: t.ID, Name: name, Email: email,
		Status: Pending, AmountMinor: t.PriceMinor, Currency: t.Currency, Created: now,
	}
	// The expiry is scheduled before the registration is saved, so no saved
	// registration lacks one; a schedule whose registration was never saved
	// finds nothing to expire.
	if err := s.scheduleUnconfirmedExpiry(ctx, r); err != nil {
		return Registration{}, err
	}
	if _, err := s.regs.Create(ctx, regKey(eid, r.ID), mustJSON(r)); err != nil {
		return Registration{}, fmt.Errorf("save registration: %w", err)
	}
	if _, err := s.regs.Put(ctx, personKey(email, eid, r.ID), nil); err != nil {
		return Registration{}, fmt.Errorf("index registration: %w", err)
	}
	// Failing here fails the request: the pending registration stays
	// unconfirmed, holds no seat, is not shown to the organiser and expires;
	// the participant registers again.
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindRegistered, EventID: eid, OrganiserID: e.OrganiserID, RegistrationID: r.ID, TicketTypeID: t.ID}, "registered:"+r.ID); err != nil {
		return Registration{}, err
	}
	return r, nil
}

func normaliseEmail(s string) (string, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(s))
	if err != nil || !strings.Contains(a.Address, ".") {
		return "", fmt.Errorf("%q is not an email address", s)
	}
	return strings.ToLower(a.Address), nil
}

// RegistrationFor returns a registration and its event to the participant
// signed in with email; anyone else gets ErrNotFound.
func (s *Service) RegistrationFor(ctx context.Context, email, eid, rid string) (Registration, Event, error) {
	r, _, err := s.ownRegistration(ctx, email, eid, rid)
	if err != nil {
		return Registration{}, Event{}, err
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	return r, e, err
}

func (s *Service) ownRegistration(ctx context.Context, email, eid, rid string) (Registration, uint64, error) {
	if !ids.Valid(eid) || !ids.Valid(rid) {
		return Registration{}, 0, ErrNotFound
	}
	r, rev, err := getJSON[Registration](ctx, s.regs, regKey(eid, rid))
	if err != nil {
		return Registration{}, 0, err
	}
	if email == "" || !strings.EqualFold(r.Email, email) {
		return Registration{}, 0, ErrNotFound
	}
	return r, rev, nil
}

// changeReg applies f to a registration under compare-and-set. f returns
// false to leave it unchanged.
func (s *Service) changeReg(ctx context.Context, eid, rid string, f func(r *Registration) (bool, error)) (Registration, bool, error) {
	for {
		r, rev, err := getJSON[Registration](ctx, s.regs, regKey(eid, rid))
		if err != nil {
			return Registration{}, false, err
		}
		changed, err := f(&r)
		if err != nil || !changed {
			return r, false, err
		}
		if _, err := s.regs.Update(ctx, regKey(eid, rid), mustJSON(r), rev); err != nil {
			if kvjson.Conflict(err) {
				continue
			}
			return Registration{}, false, fmt.Errorf("save registration %s: %w", rid, err)
		}
		return r, true, nil
	}
}

// Confirm is the participant (signed in by the magic link as email)
// confirming their registration. It takes the seat. A free ticket is then
// confirmed; a paid one stays pending with its seat held until Stripe
// reports the payment (see AttachCheckout and MarkPaid). Confirming twice is
// harmless.
func (s *Service) Confirm(ctx context.Context, email, eid, rid string) (Registration, error) {
	r, _, err := s.ownRegistration(ctx, email, eid, rid)
	if err != nil {
		return Registration{}, err
	}
	if r.Status != Pending || r.SeatHeld {
		// Confirming again makes up for a domain event or hold schedule
		// that was not acknowledged the first time (both deduplicated).
		return r, s.afterConfirm(ctx, r, false)
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return Registration{}, err
	}
	if e.Past(s.now()) {
		return Registration{}, ErrEventOver
	}
	tid := r.TicketTypeID
	if err := s.adjustSeats(ctx, e, tid, 1); err != nil {
		return Registration{}, err
	}
	now := s.now()
	r, changed, err := s.changeReg(ctx, eid, rid, func(r *Registration) (bool, error) {
		if r.Status != Pending || r.SeatHeld {
			return false, nil
		}
		r.SeatHeld = true
		r.Confirmed = now
		// The participant, signed in as the registered address, agrees
		// now: the form's ticks were required, this records them as theirs.
		r.Consent = Consent{Terms: true, DataSharing: true, Version: ConsentVersion, At: now}
		if r.AmountMinor == 0 {
			r.Status = Confirmed
		} else {
			r.HoldUntil = now.Add(s.cfg.HoldTTL)
		}
		return true, nil
	})
	if err != nil || !changed {
		// A concurrent confirm won (or saving failed): give our seat back.
		if rerr := s.adjustSeats(ctx, e, tid, -1); rerr != nil {
			return Registration{}, errors.Join(err, rerr)
		}
		return r, err
	}
	return r, s.afterConfirm(ctx, r, true)
}

// afterConfirm publishes what a confirmation leads to: the confirmed event
// and the ticket mail for a free ticket; the seat-held event and the
// schedule that releases the hold for a paid one. It is called again when
// a confirmation is repeated (first false): publishes are deduplicated by
// id, and the ticket mail is not sent twice.
func (s *Service) afterConfirm(ctx context.Context, r Registration, first bool) error {
	if !r.SeatHeld || (r.Status != Confirmed && r.Status != Pending) {
		return nil
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(r.EventID))
	if err != nil {
		return err
	}
	if r.Status == Confirmed {
		if first {
			s.mailTicket(ctx, r, e)
		}
		return s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindConfirmed, EventID: r.EventID, OrganiserID: e.OrganiserID, RegistrationID: r.ID, TicketTypeID: r.TicketTypeID}, "confirmed:"+r.ID)
	}
	if err := s.scheduleHoldRelease(ctx, r); err != nil {
		return err
	}
	return s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindSeatHeld, EventID: r.EventID, OrganiserID: e.OrganiserID, RegistrationID: r.ID, TicketTypeID: r.TicketTypeID, AmountMinor: r.AmountMinor, Currency: r.Currency}, "seatheld:"+r.ID)
}

// Cancel is the participant giving up a registration; a held seat is freed.
func (s *Service) Cancel(ctx context.Context, email, eid, rid string) (Registration, error) {
	if _, _, err := s.ownRegistration(ctx, email, eid, rid); err != nil {
		return Registration{}, err
	}
	now := s.now()
	held := false
	r, changed, err := s.changeReg(ctx, eid, rid, func(r *Registration) (bool, error) {
		if r.Status == Cancelled || r.Status == Expired || r.Status == RefundDue {
			return false, nil
		}
		if r.Status == Paid {
			return false, fmt.Errorf("%w: paid tickets are refunded by the organiser", ErrWrongState)
		}
		held = r.SeatHeld
		r.Status, r.SeatHeld, r.Cancelled = Cancelled, false, now
		return true, nil
	})
	if err != nil || !changed {
		return r, err
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return r, err
	}
	if held {
		if err := s.adjustSeats(ctx, e, r.TicketTypeID, -1); err != nil {
			return r, err
		}
	}
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindCancelled, EventID: eid, OrganiserID: e.OrganiserID, RegistrationID: rid, TicketTypeID: r.TicketTypeID}, "cancelled:"+rid); err != nil {
		return r, err
	}
	return r, nil
}

// MyRegistration is a participant's registration with its event.
type MyRegistration struct {
	Registration Registration
	Event        Event
}

// MyRegistrations lists the registrations of the participant signed in as
// email, soonest event first.
func (s *Service) MyRegistrations(ctx context.Context, email string) ([]MyRegistration, error) {
	email, err := normaliseEmail(email)
	if err != nil {
		return nil, nil
	}
	refs, err := s.personRegs(ctx, email)
	if err != nil {
		return nil, err
	}
	var out []MyRegistration
	for _, ref := range refs {
		r, e, err := s.RegistrationFor(ctx, email, ref.eid, ref.rid)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, MyRegistration{Registration: r, Event: e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Event.Start.Before(out[j].Event.Start) })
	return out, nil
}

func (s *Service) mailTicket(ctx context.Context, r Registration, e Event) {
	what := "Your registration is confirmed"
	switch r.Status {
	case Paid:
		what = "Payment received: your ticket is confirmed"
	case RefundDue:
		// The seat hold had expired and the last seat went to someone
		// else before the payment arrived.
		what = "Payment received too late: the seat was no longer free, the organiser will refund you"
	}
	t, _ := e.Ticket(r.TicketTypeID)
	loc := e.Location()
	base := strings.TrimRight(s.cfg.BaseURL, "/")
	text := fmt.Sprintf("Hello %s,\n\n%s.\n\n%s\n%s – %s (%s)\nTicket: %s (%s)\n\nSee your events: %s/events/mine\n",
		r.Name, what, e.Title, e.Start.In(loc).Format("Mon 2 Jan 2006 15:04"), e.End.In(loc).Format("Mon 2 Jan 2006 15:04"), e.TimeZone,
		t.Name, t.Price(), base)
	if r.Status != RefundDue {
		text += fmt.Sprintf("\nOn the day, the event runs in its live app (stream, chat, your team), signed in as %s:\n%s%s\n", r.Email, base, LivePath(e.ID))
	}
	err := s.cfg.Mail(ctx, subjects.Mail{
		ID: "events-" + string(r.Status) + ":" + r.ID, To: r.Email,
		Subject: what + ": " + OneLine(e.Title), Text: text,
	})
	if err != nil {
		// The registration stands; only the mail is missing, and "my
		// events" shows the ticket all the same.
		s.cfg.Log.Error("queue ticket mail", "registration", r.ID, "err", err)
	}
}
