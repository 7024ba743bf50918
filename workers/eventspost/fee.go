package eventspost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/accounts"
	"jetfleet/internal/eventpost"
	"jetfleet/internal/events"
	"jetfleet/internal/payments"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// MaxFeeAttempts is how many declined charges (with backoff between them)
// an event's fee gets before it is flagged to the organiser.
const MaxFeeAttempts = 4

// Fee is the events-fee role's handler.
type Fee struct {
	Events   *events.Service
	Store    *eventpost.Store
	Accounts *accounts.Store
	// Payments is the platform's Stripe; nil flags every fee due.
	Payments *payments.Client
	Prices   eventpost.Prices
	Mail     func(context.Context, subjects.Mail) error
	BaseURL  string
	Now      func() time.Time
	Log      *slog.Logger
	Metrics  *FeeMetrics
}

// FeeMetrics count fee outcomes for operators.
type FeeMetrics struct {
	Charges *prometheus.CounterVec // by result: paid, waived, declined, flagged
}

// NewFeeMetrics registers the metrics with reg (nil: not exported).
func NewFeeMetrics(reg prometheus.Registerer) *FeeMetrics {
	m := &FeeMetrics{Charges: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jetfleet_events_fee_charges_total",
		Help: "Platform fee outcomes per event: paid, waived, declined (retried), flagged (the organiser must act).",
	}, []string{"result"})}
	if reg != nil {
		reg.MustRegister(m.Charges)
	}
	return m
}

func (f *Fee) count(result string) {
	if f.Metrics != nil {
		f.Metrics.Charges.WithLabelValues(result).Inc()
	}
}

// Handle charges the fee of the event whose summary was stored, once, and
// mails the organiser the summary, once.
func (f *Fee) Handle(ctx context.Context, msg jetstream.Msg) error {
	firing, err := Firing(msg)
	if err != nil {
		return err
	}
	sum, err := f.Store.Summary(ctx, firing.EventID)
	if errors.Is(err, eventpost.ErrNotFound) {
		return consume.Permanentf("fee of %s: no accumulated summary", firing.EventID)
	}
	if err != nil {
		return err
	}
	rec, rev, err := f.ledger(ctx, sum)
	if err != nil {
		return err
	}
	for !rec.Settled() {
		if rec, rev, err = f.charge(ctx, rec, rev); err != nil {
			return err
		}
	}
	if rec.Mailed {
		return nil
	}
	u, err := f.Accounts.User(ctx, sum.OrganiserID)
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		// The organiser deleted their account: nobody to mail.
		f.Log.Info("summary mail not sent: the organiser's account is gone", "event", sum.EventID)
	case err != nil:
		return fmt.Errorf("organiser of %s: %w", sum.EventID, err)
	default:
		if err := f.Mail(ctx, eventpost.SummaryMail(u.Email, f.BaseURL, sum, rec)); err != nil {
			return err
		}
	}
	rec.Mailed, rec.Updated = true, f.Now().UTC()
	if _, err := f.Store.UpdateFee(ctx, rec, rev); err != nil {
		// Changed meanwhile by another worker that mailed too: the mail id
		// deduplicates; retry to record it.
		return err
	}
	return nil
}

// ledger returns the event's ledger record, writing it first when there is
// none: the record of the intent, before any call to Stripe.
func (f *Fee) ledger(ctx context.Context, sum eventpost.Summary) (eventpost.FeeRecord, uint64, error) {
	rec, rev, err := f.Store.Fee(ctx, sum.EventID)
	if err == nil || !errors.Is(err, eventpost.ErrNotFound) {
		return rec, rev, err
	}
	now := f.Now().UTC()
	rec = eventpost.FeeRecord{
		EventID: sum.EventID, OrganiserID: sum.OrganiserID, Participants: sum.Registrations,
		AmountMinor: f.Prices.Fee(sum.Registrations), Currency: f.Prices.Currency,
		State: eventpost.FeeCharging, Attempt: 1, Created: now, Updated: now,
	}
	if rec.AmountMinor < eventpost.MinChargeMinor {
		rec.State = eventpost.FeeWaived
		f.count("waived")
	}
	rev, err = f.Store.CreateFee(ctx, rec)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return f.Store.Fee(ctx, sum.EventID)
	}
	return rec, rev, err
}

// charge makes the ledger's current attempt and records its outcome.
func (f *Fee) charge(ctx context.Context, rec eventpost.FeeRecord, rev uint64) (eventpost.FeeRecord, uint64, error) {
	org, err := f.Events.Organiser(ctx, rec.OrganiserID)
	if err != nil {
		return rec, rev, err
	}
	log := f.Log.With("event", rec.EventID, "attempt", rec.Attempt)
	switch {
	case f.Payments == nil:
		return f.flag(ctx, rec, rev, "the platform's Stripe account is not configured.", "")
	case org.FeePaymentMethod == "" || org.FeeCustomerID == "":
		return f.flag(ctx, rec, rev, "no card is saved for platform fees.", "")
	}
	pi, err := f.Payments.ChargeOffSession(ctx, payments.OffSessionCharge{
		Customer: org.FeeCustomerID, PaymentMethod: org.FeePaymentMethod,
		AmountMinor: rec.AmountMinor, Currency: rec.Currency,
		Description: fmt.Sprintf("jetfleet platform fee, event %s (%d participants)", rec.EventID, rec.Participants),
		Metadata:    map[string]string{"event_id": rec.EventID, "participants": fmt.Sprint(rec.Participants)},
		// The same attempt always sends the same key: a crash after Stripe
		// charged, or a lost answer, gets the first PaymentIntent back.
		IdempotencyKey: eventpost.IdempotencyKey(rec.EventID, rec.Attempt),
	})
	var declined *payments.ChargeDeclined
	switch {
	case errors.As(err, &declined) && declined.AuthenticationRequired():
		log.Warn("fee needs the organiser's authentication", "code", declined.Code)
		return f.flag(ctx, rec, rev, "the bank asks for your authentication, which an automatic charge cannot give. Save the card again.", declined.Code)
	case errors.As(err, &declined):
		if rec.Attempt >= MaxFeeAttempts {
			return f.flag(ctx, rec, rev, fmt.Sprintf("the card was declined %d times (%s).", rec.Attempt, declined.DeclineCode), declined.DeclineCode)
		}
		f.count("declined")
		rec.State, rec.Reason, rec.DeclineCode, rec.PaymentIntentID = eventpost.FeeRetrying, declined.Message, declined.DeclineCode, declined.PaymentIntentID
		rec.Attempt++ // the next attempt is a new charge, with its own key
		rec.Updated = f.Now().UTC()
		if _, err := f.Store.UpdateFee(ctx, rec, rev); err != nil {
			return rec, rev, err
		}
		log.Warn("fee declined; retrying with backoff", "decline_code", declined.DeclineCode)
		return rec, rev, fmt.Errorf("fee of %s declined (%s): will retry", rec.EventID, declined.DeclineCode)
	case err != nil:
		// Network, 5xx, 429: the same attempt again, same key.
		return rec, rev, err
	}
	rec.State, rec.PaymentIntentID, rec.Reason, rec.DeclineCode, rec.Updated = eventpost.FeePaid, pi, "", "", f.Now().UTC()
	rev, err = f.Store.UpdateFee(ctx, rec, rev)
	if err != nil {
		return rec, rev, err
	}
	f.count("paid")
	log.Info("fee charged", "amount_minor", rec.AmountMinor, "currency", rec.Currency, "payment_intent", pi)
	return rec, rev, nil
}

// flag settles the record as needing the organiser: the summary mail
// tells them, their analytics page shows it, operators see the metric and
// the record.
func (f *Fee) flag(ctx context.Context, rec eventpost.FeeRecord, rev uint64, reason, code string) (eventpost.FeeRecord, uint64, error) {
	rec.State, rec.Reason, rec.DeclineCode, rec.Updated = eventpost.FeeFlagged, reason, code, f.Now().UTC()
	rev, err := f.Store.UpdateFee(ctx, rec, rev)
	if err != nil {
		return rec, rev, err
	}
	f.count("flagged")
	f.Log.Warn("fee flagged to the organiser", "event", rec.EventID, "reason", reason)
	return rec, rev, nil
}
