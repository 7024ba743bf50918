// Package payments is jetfleet's client of Stripe: Connect onboarding of
// organisers (Express accounts and account links), Checkout Sessions whose
// payment goes entirely to the organiser's connected account (a destination
// charge without application fee), and verification of Stripe's signed
// webhooks. It uses github.com/stripe/stripe-go with a configurable API
// base URL, so tests and development installs talk to stripetest, a local
// server that speaks the same protocol.
package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"
)

// DefaultAPIBase is Stripe's API.
const DefaultAPIBase = "https://api.stripe.com"

// Config says how to reach Stripe.
type Config struct {
	SecretKey     string // sk_test_… or sk_live_…
	WebhookSecret string // whsec_…, to verify webhook signatures
	APIBase       string // default DefaultAPIBase
	HTTPClient    *http.Client
}

// Client calls Stripe.
type Client struct {
	sc            *stripe.Client
	webhookSecret string
}

// ErrInvalidSignature marks a webhook whose signature does not verify (or is
// too old): it did not come from Stripe, or was replayed.
var ErrInvalidSignature = errors.New("invalid Stripe webhook signature")

// New returns a client; it fails when a setting is missing.
func New(cfg Config) (*Client, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("STRIPE_SECRET_KEY: required")
	}
	if cfg.WebhookSecret == "" {
		return nil, errors.New("STRIPE_WEBHOOK_SECRET: required")
	}
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	backends := stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(strings.TrimRight(cfg.APIBase, "/")),
		HTTPClient:        cfg.HTTPClient,
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(2),
	})
	return &Client{sc: stripe.NewClient(cfg.SecretKey, stripe.WithBackends(backends)), webhookSecret: cfg.WebhookSecret}, nil
}

// CreateExpressAccount creates a connected Express account for an
// organiser and returns its id.
func (c *Client) CreateExpressAccount(ctx context.Context, email string) (string, error) {
	a, err := c.sc.V1Accounts.Create(ctx, &stripe.AccountCreateParams{
		Type:  stripe.String(string(stripe.AccountTypeExpress)),
		Email: stripe.String(email),
		Capabilities: &stripe.AccountCreateCapabilitiesParams{
			CardPayments: &stripe.AccountCreateCapabilitiesCardPaymentsParams{Requested: stripe.Bool(true)},
			Transfers:    &stripe.AccountCreateCapabilitiesTransfersParams{Requested: stripe.Bool(true)},
		},
	})
	if err != nil {
		return "", fmt.Errorf("create Stripe account: %w", err)
	}
	return a.ID, nil
}

// OnboardingLink returns the URL where the organiser completes Stripe's
// onboarding; Stripe sends them to returnURL after, or to refreshURL when
// the link expired.
func (c *Client) OnboardingLink(ctx context.Context, account, refreshURL, returnURL string) (string, error) {
	l, err := c.sc.V1AccountLinks.Create(ctx, &stripe.AccountLinkCreateParams{
		Account:    stripe.String(account),
		RefreshURL: stripe.String(refreshURL),
		ReturnURL:  stripe.String(returnURL),
		Type:       stripe.String("account_onboarding"),
	})
	if err != nil {
		return "", fmt.Errorf("create Stripe account link: %w", err)
	}
	return l.URL, nil
}

// AccountReady reports whether a connected account finished onboarding and
// can take charges.
func (c *Client) AccountReady(ctx context.Context, account string) (bool, error) {
	a, err := c.sc.V1Accounts.GetByID(ctx, account, nil)
	if err != nil {
		return false, fmt.Errorf("retrieve Stripe account %s: %w", account, err)
	}
	return a.DetailsSubmitted && a.ChargesEnabled, nil
}

// CheckoutRequest is one ticket to pay.
type CheckoutRequest struct {
	Account     string // connected account that receives the whole amount
	Reference   string // client_reference_id: how the webhook finds the registration
	Email       string
	ProductName string
	AmountMinor int64
	Currency    string
	SuccessURL  string
	CancelURL   string
	// IdempotencyKey makes a retried create return the same session.
	IdempotencyKey string
	// ExpiresAt, when set, is when the session expires (and Stripe sends
	// checkout.session.expired): moved into Stripe's allowed range of 30
	// minutes to 24 hours from now.
	ExpiresAt time.Time
}

// Stripe's limits on a Checkout Session's expires_at, from its creation.
const (
	MinCheckoutLifetime = 30 * time.Minute
	MaxCheckoutLifetime = 24 * time.Hour
)

// Checkout is a created Checkout Session.
type Checkout struct {
	ID  string
	URL string // where to send the participant
}

// CreateCheckout creates a Checkout Session in payment mode whose charge
// is a destination charge: transfer_data.destination is the organiser's
// account and no application fee is taken, so 100% goes to the organiser.
func (c *Client) CreateCheckout(ctx context.Context, r CheckoutRequest) (Checkout, error) {
	p := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(r.Reference),
		CustomerEmail:     stripe.String(r.Email),
		SuccessURL:        stripe.String(r.SuccessURL),
		CancelURL:         stripe.String(r.CancelURL),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:    stripe.String(r.Currency),
				UnitAmount:  stripe.Int64(r.AmountMinor),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String(r.ProductName)},
			},
		}},
		PaymentIntentData: &stripe.CheckoutSessionCreatePaymentIntentDataParams{
			TransferData: &stripe.CheckoutSessionCreatePaymentIntentDataTransferDataParams{Destination: stripe.String(r.Account)},
		},
		Metadata: map[string]string{"reference": r.Reference},
	}
	if !r.ExpiresAt.IsZero() {
		// A minute of slack either way for the time the request travels.
		now := time.Now()
		at := r.ExpiresAt.Unix()
		at = max(at, now.Add(MinCheckoutLifetime+time.Minute).Unix())
		at = min(at, now.Add(MaxCheckoutLifetime-time.Minute).Unix())
		p.ExpiresAt = stripe.Int64(at)
	}
	if r.IdempotencyKey != "" {
		p.SetIdempotencyKey(r.IdempotencyKey)
	}
	s, err := c.sc.V1CheckoutSessions.Create(ctx, p)
	if err != nil {
		return Checkout{}, fmt.Errorf("create Stripe Checkout Session: %w", err)
	}
	return Checkout{ID: s.ID, URL: s.URL}, nil
}

// CheckoutCompleted is a checkout.session.completed webhook, or (Expired
// set) a checkout.session.expired one.
type CheckoutCompleted struct {
	EventID     string // Stripe's event id
	Expired     bool   // the session expired unpaid: checkout.session.expired
	SessionID   string
	Reference   string
	Paid        bool // payment_status is "paid"
	AmountMinor int64
	Currency    string
}

// ParseWebhook verifies a webhook body against its Stripe-Signature header
// (t=…,v1=HMAC-SHA256 of "t.body" under the webhook secret, within five
// minutes) and decodes a checkout.session.completed or
// checkout.session.expired event. Other event types return ok false.
func (c *Client) ParseWebhook(body []byte, signature string) (CheckoutCompleted, bool, error) {
	ev, err := webhook.ConstructEventWithOptions(body, signature, c.webhookSecret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		return CheckoutCompleted{}, false, fmt.Errorf("%w: %v", ErrInvalidSignature, err)
	}
	if ev.Type != stripe.EventTypeCheckoutSessionCompleted && ev.Type != stripe.EventTypeCheckoutSessionExpired {
		return CheckoutCompleted{}, false, nil
	}
	var s stripe.CheckoutSession
	if err := s.UnmarshalJSON(ev.Data.Raw); err != nil {
		return CheckoutCompleted{}, false, fmt.Errorf("decode checkout session of event %s: %w", ev.ID, err)
	}
	if s.Mode == stripe.CheckoutSessionModeSubscription {
		// A subscription (ParseSubscriptionWebhook), not a ticket payment.
		return CheckoutCompleted{}, false, nil
	}
	return CheckoutCompleted{
		EventID: ev.ID, SessionID: s.ID, Reference: s.ClientReferenceID,
		Expired:     ev.Type == stripe.EventTypeCheckoutSessionExpired,
		Paid:        s.PaymentStatus == stripe.CheckoutSessionPaymentStatusPaid,
		AmountMinor: s.AmountTotal, Currency: string(s.Currency),
	}, true, nil
}
