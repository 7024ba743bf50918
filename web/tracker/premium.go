package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

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

// Plans applies Stripe's subscription events to the users' premium flag.
// The site's one Stripe webhook hands it the subscription events.
type Plans struct {
	Accounts *accounts.Store
	Log      *slog.Logger
}

// Apply sets (subscription started) or clears (subscription deleted) the
// user's premium flag. A redelivered event finds the flag already so and
// changes nothing; an event for a user we do not have is logged and
// acknowledged, since delivering it again cannot help.
func (p Plans) Apply(ctx context.Context, ev payments.SubscriptionEvent) error {
	u, err := p.Accounts.User(ctx, ev.User)
	if errors.Is(err, accounts.ErrNotFound) {
		p.Log.Warn("stripe subscription for an unknown user", "event", ev.EventID, "user", ev.User, "subscription", ev.Subscription)
		return nil
	}
	if err != nil {
		return fmt.Errorf("load user %s: %w", ev.User, err)
	}
	if u.Premium == ev.Active {
		p.Log.Info("stripe subscription already applied", "event", ev.EventID, "user", u.ID, "premium", ev.Active)
		return nil
	}
	if _, err := p.Accounts.SetPremium(ctx, u.Email, ev.Active); err != nil {
		return fmt.Errorf("set premium of user %s: %w", u.ID, err)
	}
	p.Log.Info("premium changed", "event", ev.EventID, "user", u.ID, "premium", ev.Active, "subscription", ev.Subscription)
	return nil
}

// goPremium creates the subscription's Checkout Session and sends the user
// to it; Stripe sends them back to the dashboard, which says whether the
// webhook has turned premium on yet.
func (h *Handler) goPremium(w http.ResponseWriter, r *http.Request, uid string) {
	if h.d.Payments == nil {
		h.showDashboard(w, r, uid, http.StatusServiceUnavailable, "Premium cannot be bought on this site: payments are not configured.", "", "")
		return
	}
	u, _ := session.UserFrom(r.Context())
	back := h.d.BaseURL + "/tracker?ok=" + noticePremium
	co, err := h.d.Payments.CreateSubscriptionCheckout(r.Context(), payments.SubscriptionRequest{
		User: uid, Email: u.Email, ProductName: premiumName, Currency: premiumCurrency, AmountMinor: premiumMinor,
		SuccessURL: back, CancelURL: h.d.BaseURL + "/tracker",
	})
	if err != nil {
		h.pages.Fail(w, r, "premium checkout", err)
		return
	}
	http.Redirect(w, r, co.URL, http.StatusSeeOther)
}
