package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/ids"
	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// Seat holds of paid tickets end one of three ways: the payment arrives
// (MarkPaid), Stripe reports the Checkout Session expired (ReleaseHold with
// its session id), or the one-shot schedule set when the seat was taken
// fires at HoldUntil (ReleaseHold without one) — the safety net for a
// checkout that was never even opened, or a webhook that never came.

// scheduleHoldRelease publishes the one-shot schedule (@at r.HoldUntil) that
// fires subjects.EventHoldRelease for the event-holds role. The stream keeps
// one message per subject and the publish is deduplicated, so scheduling
// again (a repeated confirmation) is harmless.
func (s *Service) scheduleHoldRelease(ctx context.Context, r Registration) error {
	b, _ := json.Marshal(subjects.EventsHoldExpiry{EventID: r.EventID, RegistrationID: r.ID, Until: r.HoldUntil})
	err := s.publishRetrying(ctx, subjects.EventsHoldSchedule(r.ID), b,
		jetstream.WithScheduleAt(r.HoldUntil), jetstream.WithScheduleTarget(subjects.EventsHoldRelease(r.ID)),
		jetstream.WithMsgID("hold:"+r.ID))
	if err != nil {
		return fmt.Errorf("schedule release of hold %s: %w", r.ID, err)
	}
	return nil
}

// HoldRelease asks to release a held seat.
type HoldRelease struct {
	EventID, RegID string
	// SessionID is the Checkout Session Stripe reported expired; empty when
	// the hold's timer fired.
	SessionID string
}

// ReleaseHold frees the seat of a paid ticket whose payment never came: the
// registration becomes Expired and the seat is available again. It changes
// nothing (false, nil) when the registration is paid, cancelled, already
// released, or when Stripe reports the expiry of a session that is not the
// registration's. A timer that fires before HoldUntil gets ErrHoldNotDue.
func (s *Service) ReleaseHold(ctx context.Context, h HoldRelease) (bool, error) {
	if !ids.Valid(h.EventID) || !ids.Valid(h.RegID) {
		return false, ErrNotFound
	}
	now := s.cfg.Now().UTC()
	r, changed, err := s.changeReg(ctx, h.EventID, h.RegID, func(r *Registration) (bool, error) {
		if r.Status != Pending || !r.SeatHeld || r.AmountMinor == 0 {
			return false, nil
		}
		if h.SessionID != "" && h.SessionID != r.CheckoutSessionID {
			return false, nil
		}
		if h.SessionID == "" && now.Before(r.HoldUntil) {
			return false, ErrHoldNotDue
		}
		r.Status, r.SeatHeld, r.Cancelled = Expired, false, now.Truncate(1e9)
		return true, nil
	})
	if err != nil || !changed {
		return false, err
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(h.EventID))
	if err != nil {
		return true, err
	}
	if err := s.adjustSeats(ctx, e, r.TicketTypeID, -1); err != nil {
		return true, err
	}
	by := "timer"
	if h.SessionID != "" {
		by = "stripe"
	}
	s.cfg.Log.Info("seat hold released", "event", h.EventID, "registration", h.RegID, "by", by)
	return true, s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindHoldReleased, EventID: h.EventID, OrganiserID: e.OrganiserID, RegistrationID: h.RegID, TicketTypeID: r.TicketTypeID}, "holdreleased:"+h.RegID)
}

// errHoldReleased tells MarkPaid that the registration's hold was released:
// the payment is applied by latePayment.
var errHoldReleased = errors.New("seat hold released before the payment")

// latePayment applies a payment for a registration whose hold was released.
// If a seat of its ticket type is still free, the participant gets it and
// the registration is Paid as usual. Otherwise it becomes RefundDue: the
// organiser sees it on their registration list and refunds it in Stripe
// (refunds through jetfleet are out of scope), and the participant is told.
func (s *Service) latePayment(ctx context.Context, p Payment) (bool, error) {
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(p.EventID))
	if err != nil {
		return false, err
	}
	cur, _, err := getJSON[Registration](ctx, s.regs, regKey(p.EventID, p.RegID))
	if err != nil {
		return false, err
	}
	if cur.CheckoutSessionID != p.SessionID || cur.AmountMinor != p.AmountMinor || !strings.EqualFold(cur.Currency, p.Currency) {
		return false, ErrPaymentMismatch
	}
	if cur.Status == RefundDue {
		// Delivered again: publish again (deduplicated) in case the first
		// delivery's event was not acknowledged.
		return false, s.publish(ctx, lateEvent(subjects.EventsKindLatePayment, cur, e), subjects.EventsKindLatePayment+":"+p.RegID)
	}
	now := s.now()
	seatErr := s.adjustSeats(ctx, e, cur.TicketTypeID, 1)
	if seatErr != nil && !errors.Is(seatErr, ErrSoldOut) {
		return false, seatErr
	}
	gotSeat := seatErr == nil
	r, changed, err := s.changeReg(ctx, p.EventID, p.RegID, func(r *Registration) (bool, error) {
		if r.Status != Expired {
			return false, nil
		}
		r.Paid = now
		if gotSeat {
			r.Status, r.SeatHeld = Paid, true
		} else {
			r.Status = RefundDue
		}
		return true, nil
	})
	if gotSeat && (err != nil || !changed) {
		// Someone else applied it meanwhile: give the seat back.
		if rerr := s.adjustSeats(ctx, e, cur.TicketTypeID, -1); rerr != nil {
			return false, errors.Join(err, rerr)
		}
	}
	if err != nil || !changed {
		return false, err
	}
	kind := subjects.EventsKindPaid
	if !gotSeat {
		kind = subjects.EventsKindLatePayment
		s.cfg.Log.Warn("payment after seat hold released, no seat left: refund due", "event", p.EventID, "registration", p.RegID, "session", p.SessionID)
	}
	s.mailTicket(ctx, r, e)
	return true, s.publish(ctx, lateEvent(kind, r, e), kind+":"+p.RegID)
}

// lateEvent is the domain event of a late payment's outcome.
func lateEvent(kind string, r Registration, e Event) subjects.EventsDomainEvent {
	return subjects.EventsDomainEvent{Kind: kind, EventID: r.EventID, OrganiserID: e.OrganiserID, RegistrationID: r.ID, TicketTypeID: r.TicketTypeID, AmountMinor: r.AmountMinor, Currency: r.Currency}
}

// scheduleUnconfirmedExpiry publishes the one-shot schedule (@at Created +
// UnconfirmedTTL) that expires registration r if its participant never
// confirms it. It shares the hold's schedule subject: a paid ticket's
// confirmation replaces it with the hold's schedule (the stream keeps one
// message per subject); a free ticket's leaves it, and it then finds a
// confirmed registration and changes nothing.
func (s *Service) scheduleUnconfirmedExpiry(ctx context.Context, r Registration) error {
	until := r.Created.Add(s.cfg.UnconfirmedTTL)
	b, _ := json.Marshal(subjects.EventsHoldExpiry{EventID: r.EventID, RegistrationID: r.ID, Until: until, Unconfirmed: true})
	err := s.publishRetrying(ctx, subjects.EventsHoldSchedule(r.ID), b,
		jetstream.WithScheduleAt(until), jetstream.WithScheduleTarget(subjects.EventsHoldRelease(r.ID)),
		jetstream.WithMsgID("unconfirmed:"+r.ID))
	if err != nil {
		return fmt.Errorf("schedule expiry of registration %s: %w", r.ID, err)
	}
	return nil
}

// ExpireUnconfirmed deletes a registration its participant did not confirm
// within UnconfirmedTTL, with its entry in the participant's index: nobody
// agreed to keeping that name and address. Such a registration holds no
// seat (Confirm takes it), so seat counts do not change. It changes nothing
// (false, nil) when the registration was confirmed or cancelled meanwhile,
// or is gone; before its time it returns ErrHoldNotDue.
func (s *Service) ExpireUnconfirmed(ctx context.Context, eid, rid string) (bool, error) {
	if !ids.Valid(eid) || !ids.Valid(rid) {
		return false, nil
	}
	for {
		r, rev, err := getJSON[Registration](ctx, s.regs, regKey(eid, rid))
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if r.Status != Pending || r.SeatHeld || !r.Confirmed.IsZero() {
			return false, nil
		}
		if s.cfg.Now().Before(r.Created.Add(s.cfg.UnconfirmedTTL)) {
			return false, fmt.Errorf("expire unconfirmed registration %s: not due yet: %w", rid, ErrHoldNotDue)
		}
		// Purged (earlier revisions too: they hold the same name and
		// address) only if unchanged since read: a confirmation that won the
		// race keeps its registration and the seat it took.
		err = s.regs.Purge(ctx, regKey(eid, rid), jetstream.LastRevision(rev))
		if kvjson.Conflict(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("delete unconfirmed registration %s: %w", rid, err)
		}
		// Should this fail, the index keeps a pointer to nothing (an address
		// hash; "my events" skips it): not worth failing the expiry for.
		if err := s.regs.Purge(ctx, personKey(r.Email, eid, rid)); err != nil {
			s.cfg.Log.Warn("unindex expired registration", "event", eid, "registration", rid, "err", err)
		}
		s.cfg.Log.Info("unconfirmed registration expired", "event", eid, "registration", rid)
		return true, s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindUnconfirmed, EventID: eid, RegistrationID: rid, TicketTypeID: r.TicketTypeID}, "unconfirmed:"+rid)
	}
}
