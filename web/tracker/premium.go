package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/payments"
	"jetfleet/web/session"
)

// The premium plan's price (seed 000 "Usage Limits": premium lifts the
// free plan's limits), per month.
const (
	premiumName     = "Tracker premium"
	premiumCurrency = "eur"
	premiumMinor    = 900
)

// Plans sells the premium plan through Stripe and applies Stripe's
// subscription events to the users' premium flag. The site's one Stripe
// webhook hands it the subscription events.
type Plans struct {
	Accounts *accounts.Store
	Payments *payments.Client
	Log      *slog.Logger
}

// Apply sets (subscription started) or clears (subscription deleted) the
// user's premium flag. A redelivered event finds the flag already so and
// changes nothing; an event for a user we do not have is logged and
// acknowledged, since delivering it again cannot help.
func (p Plans) Apply(ctx context.Context, ev payments.SubscriptionEvent) error {
	u, err := p.Accounts.User(ctx, ev.User)
	if ev.User == "" || errors.Is(err, accounts.ErrNotFound) {
		// A subscription sold elsewhere names no user of ours.
		p.Log.Warn("stripe subscription for an unknown user", "event", ev.EventID, "user", ev.User, "subscription", ev.Subscription)
		return nil
	}
	if err != nil {
		return fmt.Errorf("load user %s: %w", ev.User, err)
	}
	sub := ev.Subscription
	switch {
	case ev.Active && u.Premium && u.Subscription == sub,
		!ev.Active && u.Subscription != sub:
		// Delivered again, or the end of a subscription that no longer
		// pays for this user's premium.
		p.Log.Info("stripe subscription event changes nothing", "event", ev.EventID, "user", u.ID, "subscription", sub, "active", ev.Active)
		return nil
	case ev.Active:
		// Stripe may deliver the start again after the end: ask it.
		active, err := p.Payments.SubscriptionActive(ctx, sub)
		if err != nil {
			return err
		}
		if !active {
			p.Log.Info("stripe subscription start of an ended subscription", "event", ev.EventID, "user", u.ID, "subscription", sub)
			return nil
		}
	default:
		sub = ""
	}
	if _, err := p.Accounts.SetSubscription(ctx, u.Email, sub); err != nil {
		return fmt.Errorf("set premium of user %s: %w", u.ID, err)
	}
	p.Log.Info("premium changed", "event", ev.EventID, "user", u.ID, "premium", ev.Active, "subscription", ev.Subscription)
	return nil
}

// goPremium creates the subscription's Checkout Session and sends the user
// to it; Stripe sends them back to the dashboard, which says whether the
// webhook has turned premium on yet.
func (h *Handler) goPremium(w http.ResponseWriter, r *http.Request, uid string) {
	if h.d.Plans == nil {
		h.showDashboard(w, r, uid, http.StatusServiceUnavailable, "Premium cannot be bought on this site: payments are not configured.", "", "")
		return
	}
	u, _ := session.UserFrom(r.Context())
	back := h.d.BaseURL + "/tracker?ok=" + noticePremium
	co, err := h.d.Plans.Payments.CreateSubscriptionCheckout(r.Context(), payments.SubscriptionRequest{
		User: uid, Email: u.Email, ProductName: premiumName, Currency: premiumCurrency, AmountMinor: premiumMinor,
		SuccessURL: back, CancelURL: h.d.BaseURL + "/tracker",
		// A second click within the window returns the same session
		// instead of opening a second subscription checkout.
		IdempotencyKey: fmt.Sprintf("premium:%s:%d", uid, time.Now().Unix()/600),
	})
	if err != nil {
		h.pages.Fail(w, r, "premium checkout", err)
		return
	}
	http.Redirect(w, r, co.URL, http.StatusSeeOther)
}

// cancelPremium cancels the user's subscription at Stripe; Stripe's
// customer.subscription.deleted, through the webhook, is what clears the
// flag, so there is one way premium ends.
func (h *Handler) cancelPremium(w http.ResponseWriter, r *http.Request, uid string) {
	sub, err := h.subscription(r.Context(), uid)
	if err != nil {
		h.pages.Fail(w, r, "plan", err)
		return
	}
	if sub == "" {
		h.showDashboard(w, r, uid, http.StatusConflict, "There is no premium subscription to cancel.", "", "")
		return
	}
	if err := h.d.Plans.Payments.CancelSubscription(r.Context(), sub); err != nil {
		h.pages.Fail(w, r, "cancel premium", err)
		return
	}
	http.Redirect(w, r, "/tracker?ok="+noticePremiumCancelled, http.StatusSeeOther)
}

// subscription is the Stripe subscription paying for uid's premium, "" for
// none (or no payments on this site).
func (h *Handler) subscription(ctx context.Context, uid string) (string, error) {
	if h.d.Plans == nil {
		return "", nil
	}
	u, err := h.d.Plans.Accounts.User(ctx, uid)
	if errors.Is(err, accounts.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("load user %s: %w", uid, err)
	}
	return u.Subscription, nil
}

// portal sends the premium user to Stripe's Customer Portal to manage or
// cancel the subscription; a cancellation there reaches us as
// customer.subscription.deleted through the webhook, like "Cancel
// premium" here.
func (h *Handler) portal(w http.ResponseWriter, r *http.Request, uid string) {
	sub, err := h.subscription(r.Context(), uid)
	if err != nil {
		h.pages.Fail(w, r, "plan", err)
		return
	}
	if sub == "" {
		h.showDashboard(w, r, uid, http.StatusConflict, "There is no premium subscription to manage.", "", "")
		return
	}
	u, err := h.d.Plans.Payments.PortalURL(r.Context(), sub, h.d.BaseURL+"/tracker")
	if err != nil {
		h.pages.Fail(w, r, "customer portal", err)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}
