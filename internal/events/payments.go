package events

import (
	"context"
	"errors"
	"strings"

	"jetfleet/internal/ids"
	"jetfleet/subjects"
)

// AttachCheckout records the Stripe Checkout Session that pays for a held
// seat, so the webhook can match it, and its URL, so a second click on
// "pay" goes back to it.
func (s *Service) AttachCheckout(ctx context.Context, email, eid, rid, sessionID, url string) error {
	if _, _, err := s.ownRegistration(ctx, email, eid, rid); err != nil {
		return err
	}
	_, _, err := s.changeReg(ctx, eid, rid, func(r *Registration) (bool, error) {
		if r.Status != Pending || !r.SeatHeld || r.AmountMinor == 0 {
			return false, ErrWrongState
		}
		r.CheckoutSessionID, r.CheckoutURL = sessionID, url
		return true, nil
	})
	return err
}

// Payment is what Stripe reported about a completed Checkout Session.
type Payment struct {
	SessionID   string
	EventID     string
	RegID       string
	AmountMinor int64
	Currency    string
}

// MarkPaid records a completed payment. It is idempotent: the first call
// for a registration marks it paid and mails the ticket; later calls (a
// webhook delivered again) change nothing and report false.
func (s *Service) MarkPaid(ctx context.Context, p Payment) (bool, error) {
	if !ids.Valid(p.EventID) || !ids.Valid(p.RegID) {
		return false, ErrNotFound
	}
	now := s.now()
	r, changed, err := s.changeReg(ctx, p.EventID, p.RegID, func(r *Registration) (bool, error) {
		if r.Status == Paid {
			return false, nil
		}
		if r.Status == Expired || r.Status == RefundDue {
			// Decided on the registration the update would replace: a hold
			// released just before is still a late payment, not a lost one.
			return false, errHoldReleased
		}
		if r.CheckoutSessionID != p.SessionID || r.AmountMinor != p.AmountMinor || !strings.EqualFold(r.Currency, p.Currency) {
			return false, ErrPaymentMismatch
		}
		if r.Status != Pending || !r.SeatHeld {
			return false, ErrWrongState
		}
		r.Status = Paid
		r.Paid = now
		return true, nil
	})
	if errors.Is(err, errHoldReleased) {
		return s.latePayment(ctx, p)
	}
	if err != nil {
		return false, err
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(p.EventID))
	if err != nil {
		return changed, err
	}
	if !changed {
		// Delivered again: publish again (deduplicated) in case the first
		// delivery's event was not acknowledged; mail nothing.
		return false, s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindPaid, EventID: p.EventID, OrganiserID: e.OrganiserID, RegistrationID: p.RegID, TicketTypeID: r.TicketTypeID, AmountMinor: r.AmountMinor, Currency: r.Currency}, "paid:"+p.RegID)
	}
	// The ticket mail first: when the publish fails, Stripe delivers again
	// and the branch above publishes without mailing a second time.
	s.mailTicket(ctx, r, e)
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindPaid, EventID: p.EventID, OrganiserID: e.OrganiserID, RegistrationID: p.RegID, TicketTypeID: r.TicketTypeID, AmountMinor: r.AmountMinor, Currency: r.Currency}, "paid:"+p.RegID); err != nil {
		return true, err
	}
	return true, nil
}
