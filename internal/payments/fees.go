package payments

import (
	"context"
	"errors"
	"fmt"

	"github.com/stripe/stripe-go/v85"
)

// The platform fee (seed 001, "Fees"): the organiser saves a card once, as
// a Stripe customer of the platform with a payment method set up for
// off-session use (a SetupIntent, made through a Checkout Session in setup
// mode), and each event's fee is charged off-session with a PaymentIntent.

// CreateCustomer creates the platform's customer for an organiser.
func (c *Client) CreateCustomer(ctx context.Context, email, userID, idempotencyKey string) (string, error) {
	p := &stripe.CustomerCreateParams{Email: stripe.String(email), Metadata: map[string]string{"user": userID}}
	if idempotencyKey != "" {
		p.SetIdempotencyKey(idempotencyKey)
	}
	cu, err := c.sc.V1Customers.Create(ctx, p)
	if err != nil {
		return "", fmt.Errorf("create Stripe customer: %w", err)
	}
	return cu.ID, nil
}

// SetupRequest asks for a Checkout Session that saves a card of customer
// for later off-session charges.
type SetupRequest struct {
	Customer   string
	Currency   string
	SuccessURL string // may hold {CHECKOUT_SESSION_ID}
	CancelURL  string
}

// CreateSetupCheckout creates a Checkout Session in setup mode: Stripe's
// page collects the card and creates a SetupIntent with usage off_session.
func (c *Client) CreateSetupCheckout(ctx context.Context, r SetupRequest) (Checkout, error) {
	s, err := c.sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode:       stripe.String(string(stripe.CheckoutSessionModeSetup)),
		Customer:   stripe.String(r.Customer),
		Currency:   stripe.String(r.Currency),
		SuccessURL: stripe.String(r.SuccessURL),
		CancelURL:  stripe.String(r.CancelURL),
		SetupIntentData: &stripe.CheckoutSessionCreateSetupIntentDataParams{
			Metadata: map[string]string{"purpose": "platform-fees"},
		},
	})
	if err != nil {
		return Checkout{}, fmt.Errorf("create Stripe setup Checkout Session: %w", err)
	}
	return Checkout{ID: s.ID, URL: s.URL}, nil
}

// SetupResult is the payment method a completed setup session saved.
type SetupResult struct {
	Customer      string
	PaymentMethod string
}

// ErrSetupIncomplete is returned for a setup session whose SetupIntent has
// not succeeded (the organiser left Stripe's page early).
var ErrSetupIncomplete = errors.New("the card was not saved")

// SetupOutcome reads a setup session and its SetupIntent.
func (c *Client) SetupOutcome(ctx context.Context, sessionID string) (SetupResult, error) {
	s, err := c.sc.V1CheckoutSessions.Retrieve(ctx, sessionID, nil)
	if err != nil {
		return SetupResult{}, fmt.Errorf("retrieve Stripe setup session %s: %w", sessionID, err)
	}
	if s.SetupIntent == nil || s.SetupIntent.ID == "" {
		return SetupResult{}, ErrSetupIncomplete
	}
	si, err := c.sc.V1SetupIntents.Retrieve(ctx, s.SetupIntent.ID, nil)
	if err != nil {
		return SetupResult{}, fmt.Errorf("retrieve Stripe SetupIntent %s: %w", s.SetupIntent.ID, err)
	}
	if si.Status != stripe.SetupIntentStatusSucceeded || si.PaymentMethod == nil {
		return SetupResult{}, ErrSetupIncomplete
	}
	res := SetupResult{PaymentMethod: si.PaymentMethod.ID}
	if si.Customer != nil {
		res.Customer = si.Customer.ID
	}
	return res, nil
}

// OffSessionCharge is one fee to charge a saved card.
type OffSessionCharge struct {
	Customer, PaymentMethod string
	AmountMinor             int64
	Currency                string
	Description             string
	Metadata                map[string]string
	// IdempotencyKey makes a retried create (after a crash or a lost
	// answer) return the first PaymentIntent instead of charging again.
	IdempotencyKey string
}

// ChargeDeclined is a charge Stripe refused: the card was declined, or
// (Code "authentication_required") the bank wants the cardholder present.
type ChargeDeclined struct {
	Code, DeclineCode, Message string
	PaymentIntentID            string
}

func (d *ChargeDeclined) Error() string {
	return fmt.Sprintf("Stripe declined the charge (%s %s): %s", d.Code, d.DeclineCode, d.Message)
}

// AuthenticationRequired reports whether the customer must authenticate
// the payment themselves (3-D Secure): retrying off-session cannot succeed.
func (d *ChargeDeclined) AuthenticationRequired() bool { return d.Code == "authentication_required" }

// ChargeOffSession creates and confirms a PaymentIntent off-session and
// returns its id. A decline is a *ChargeDeclined; other errors (network,
// 5xx, 429) may succeed when retried with the same idempotency key.
func (c *Client) ChargeOffSession(ctx context.Context, ch OffSessionCharge) (string, error) {
	p := &stripe.PaymentIntentCreateParams{
		Amount:        stripe.Int64(ch.AmountMinor),
		Currency:      stripe.String(ch.Currency),
		Customer:      stripe.String(ch.Customer),
		PaymentMethod: stripe.String(ch.PaymentMethod),
		OffSession:    stripe.Bool(true),
		Confirm:       stripe.Bool(true),
		Description:   stripe.String(ch.Description),
		Metadata:      ch.Metadata,
	}
	if ch.IdempotencyKey != "" {
		p.SetIdempotencyKey(ch.IdempotencyKey)
	}
	pi, err := c.sc.V1PaymentIntents.Create(ctx, p)
	var se *stripe.Error
	if errors.As(err, &se) && se.Type == stripe.ErrorTypeCard {
		d := &ChargeDeclined{Code: string(se.Code), DeclineCode: string(se.DeclineCode), Message: se.Msg}
		if se.PaymentIntent != nil {
			d.PaymentIntentID = se.PaymentIntent.ID
		}
		return "", d
	}
	if err != nil {
		return "", fmt.Errorf("create Stripe PaymentIntent: %w", err)
	}
	if pi.Status != stripe.PaymentIntentStatusSucceeded {
		return pi.ID, &ChargeDeclined{Code: "authentication_required", Message: "payment " + string(pi.Status), PaymentIntentID: pi.ID}
	}
	return pi.ID, nil
}
