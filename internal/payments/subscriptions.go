package payments

import (
	"context"
	"errors"
	"fmt"

	"github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"
)

// SubscriptionRequest is a monthly subscription sold through Checkout (the
// Tracker's premium plan, seed 000 "General").
type SubscriptionRequest struct {
	User           string // our user id: the session's client_reference_id and the subscription's metadata "user"
	Email          string
	ProductName    string
	Currency       string // ISO code, lower case
	AmountMinor    int64  // per month, in the currency's minor unit
	SuccessURL     string
	CancelURL      string
	IdempotencyKey string
}

// CreateSubscriptionCheckout creates a Checkout Session in subscription
// mode. The subscription carries the user in its metadata, so its
// customer.subscription.deleted event names whom it belonged to without a
// table of ours.
func (c *Client) CreateSubscriptionCheckout(ctx context.Context, r SubscriptionRequest) (Checkout, error) {
	p := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		ClientReferenceID: stripe.String(r.User),
		CustomerEmail:     stripe.String(r.Email),
		SuccessURL:        stripe.String(r.SuccessURL),
		CancelURL:         stripe.String(r.CancelURL),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:    stripe.String(r.Currency),
				UnitAmount:  stripe.Int64(r.AmountMinor),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String(r.ProductName)},
				Recurring: &stripe.CheckoutSessionCreateLineItemPriceDataRecurringParams{
					Interval: stripe.String(string(stripe.PriceRecurringIntervalMonth)),
				},
			},
		}},
		SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{
			Metadata: map[string]string{"user": r.User},
		},
	}
	if r.IdempotencyKey != "" {
		p.SetIdempotencyKey(r.IdempotencyKey)
	}
	s, err := c.sc.V1CheckoutSessions.Create(ctx, p)
	if err != nil {
		return Checkout{}, fmt.Errorf("create Stripe subscription Checkout Session: %w", err)
	}
	return Checkout{ID: s.ID, URL: s.URL}, nil
}

// SubscriptionEvent is a subscription starting (a completed Checkout
// Session in subscription mode) or ending (customer.subscription.deleted).
type SubscriptionEvent struct {
	EventID      string
	User         string // our user id
	Subscription string // sub_…
	Customer     string // cus_…
	Active       bool   // true when it starts, false when it ends
}

// ParseSubscriptionWebhook verifies a webhook like ParseWebhook and decodes
// the subscription events; any other event returns ok false.
func (c *Client) ParseSubscriptionWebhook(body []byte, signature string) (SubscriptionEvent, bool, error) {
	ev, err := webhook.ConstructEventWithOptions(body, signature, c.webhookSecret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		return SubscriptionEvent{}, false, fmt.Errorf("%w: %v", ErrInvalidSignature, err)
	}
	switch ev.Type {
	case stripe.EventTypeCheckoutSessionCompleted:
		var s stripe.CheckoutSession
		if err := s.UnmarshalJSON(ev.Data.Raw); err != nil {
			return SubscriptionEvent{}, false, fmt.Errorf("decode checkout session of event %s: %w", ev.ID, err)
		}
		if s.Mode != stripe.CheckoutSessionModeSubscription || s.Subscription == nil {
			return SubscriptionEvent{}, false, nil
		}
		out := SubscriptionEvent{EventID: ev.ID, User: s.ClientReferenceID, Subscription: s.Subscription.ID, Active: true}
		if s.Customer != nil {
			out.Customer = s.Customer.ID
		}
		return out, true, nil
	case stripe.EventTypeCustomerSubscriptionDeleted:
		var sub stripe.Subscription
		if err := sub.UnmarshalJSON(ev.Data.Raw); err != nil {
			return SubscriptionEvent{}, false, fmt.Errorf("decode subscription of event %s: %w", ev.ID, err)
		}
		out := SubscriptionEvent{EventID: ev.ID, User: sub.Metadata["user"], Subscription: sub.ID}
		if sub.Customer != nil {
			out.Customer = sub.Customer.ID
		}
		return out, true, nil
	}
	return SubscriptionEvent{}, false, nil
}

// SubscriptionActive reports whether a subscription is still active (or
// trialing): a redelivered start event of a subscription since cancelled
// must not start it again. One Stripe does not know (resource_missing) is
// not active.
func (c *Client) SubscriptionActive(ctx context.Context, id string) (bool, error) {
	s, err := c.sc.V1Subscriptions.Retrieve(ctx, id, nil)
	var se *stripe.Error
	if errors.As(err, &se) && se.Code == stripe.ErrorCodeResourceMissing {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("retrieve Stripe subscription %s: %w", id, err)
	}
	return s.Status == stripe.SubscriptionStatusActive || s.Status == stripe.SubscriptionStatusTrialing, nil
}

// CancelSubscription cancels a subscription at once; Stripe then sends
// customer.subscription.deleted, which is what ends the plan.
func (c *Client) CancelSubscription(ctx context.Context, id string) error {
	if _, err := c.sc.V1Subscriptions.Cancel(ctx, id, nil); err != nil {
		return fmt.Errorf("cancel Stripe subscription %s: %w", id, err)
	}
	return nil
}

// PortalURL is a Customer Portal session of the customer paying for
// subscription id, where they manage or cancel it; Stripe sends them back
// to returnURL. Cancelling there sends customer.subscription.deleted.
func (c *Client) PortalURL(ctx context.Context, id, returnURL string) (string, error) {
	sub, err := c.sc.V1Subscriptions.Retrieve(ctx, id, nil)
	if err != nil {
		return "", fmt.Errorf("retrieve Stripe subscription %s: %w", id, err)
	}
	if sub.Customer == nil {
		return "", fmt.Errorf("subscription %s names no Stripe customer", id)
	}
	ps, err := c.sc.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{
		Customer: stripe.String(sub.Customer.ID), ReturnURL: stripe.String(returnURL),
	})
	if err != nil {
		return "", fmt.Errorf("create Stripe Customer Portal session: %w", err)
	}
	return ps.URL, nil
}
