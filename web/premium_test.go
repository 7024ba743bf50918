package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/payments"
	"jetfleet/internal/payments/stripetest"
	"jetfleet/internal/youtube"
	"jetfleet/internal/youtube/youtubetest"
)

// startPremiumEdge is a Stripe edge whose YouTube stand-in has four
// channels, one more than the free plan tracks.
func startPremiumEdge(t *testing.T) (*eventsEdge, []string) {
	t.Helper()
	yts := youtubetest.New(youtubetest.Options{})
	yts.Start()
	t.Cleanup(yts.Close)
	var chans []string
	for i := 1; i <= 4; i++ {
		id := youtubetest.ChannelID(i)
		yts.AddChannel(id, "", "Channel")
		chans = append(chans, id)
	}
	yt, err := youtube.New(youtube.Config{BaseURL: yts.URL(), ThumbnailURL: yts.URL(), RetryMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return startStripeEdge(t, yt), chans
}

func trackStatus(v *visitor, ref string) int {
	return v.post("/tracker", "/tracker/track", url.Values{"ref": {ref}}).StatusCode
}

// Going premium through Checkout lifts the free plan's limits once Stripe's
// webhook arrives at the site's one webhook endpoint; a redelivered event
// changes nothing; cancelling the subscription brings the limits back.
func TestPremiumIsSetByTheSubscriptionWebhookAndClearedByItsCancellation(t *testing.T) {
	e, chans := startPremiumEdge(t)
	ctx := context.Background()
	v := newVisitor(t, e.URL)
	signIn(t, e, v, "pat@example.com")
	for _, c := range chans[:3] {
		if code := trackStatus(v, c); code != http.StatusSeeOther {
			t.Fatalf("track %s on the free plan = %d, want 303", c, code)
		}
	}
	if code := trackStatus(v, chans[3]); code != http.StatusForbidden {
		t.Fatalf("4th channel on the free plan = %d, want 403", code)
	}
	if _, body := v.get("/tracker"); !strings.Contains(body, "Go premium") {
		t.Fatal("dashboard of a free user offers no premium")
	}

	resp := v.post("/tracker", "/tracker/premium", url.Values{})
	checkout := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(checkout, e.stripe.URL+"/pay/") {
		t.Fatalf("go premium = %d → %q, want 303 to the stand-in's Checkout", resp.StatusCode, checkout)
	}
	cs, _ := e.stripe.Session(strings.TrimPrefix(checkout, e.stripe.URL+"/pay/"))
	if cs.Mode != "subscription" || cs.CustomerEmail != "pat@example.com" {
		t.Fatalf("checkout session %+v, want a subscription for pat", cs)
	}
	// A second click goes to the same Checkout, not a second subscription.
	if again := v.post("/tracker", "/tracker/premium", url.Values{}).Header.Get("Location"); again != checkout {
		t.Fatalf("second go premium → %q, want the same Checkout %q", again, checkout)
	}
	// Back from Checkout before the webhook: processing.
	if _, body := v.get("/tracker?ok=premium"); !strings.Contains(body, "processing") {
		t.Fatalf("return page before the webhook does not say processing:\n%s", body)
	}

	// Paying delivers checkout.session.completed (the stand-in fails
	// Complete unless the webhook answered 2xx).
	r, err := v.c.PostForm(checkout, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	back := r.Header.Get("Location")
	if back != e.URL+"/tracker?ok=premium" {
		t.Fatalf("after paying → %q", back)
	}
	_, body := v.get("/tracker?ok=premium")
	if !strings.Contains(body, "Premium is active") || !strings.Contains(body, "Premium: no limits.") || strings.Contains(body, "Go premium") {
		t.Fatalf("return page after the webhook does not show premium active:\n%s", body)
	}
	if code := trackStatus(v, chans[3]); code != http.StatusSeeOther {
		t.Fatalf("4th channel on premium = %d, want 303", code)
	}

	// Stripe delivers at least once: the same event again is acknowledged
	// and changes nothing.
	started := e.stripe.Events()
	if len(started) != 1 {
		t.Fatalf("stand-in events %v, want the one checkout.session.completed", started)
	}
	if err := e.stripe.Deliver(ctx, started[0]); err != nil {
		t.Fatalf("redelivered start: %v", err)
	}
	if _, body := v.get("/tracker"); !strings.Contains(body, "Premium: no limits.") {
		t.Fatal("redelivery changed the plan")
	}

	// Premium users see "Premium" and a way to cancel. Cancelling asks
	// Stripe, whose customer.subscription.deleted brings the free plan's
	// limits back (the four tracked channels stay tracked).
	if _, body := v.get("/tracker"); !strings.Contains(body, "Cancel premium") {
		t.Fatalf("premium dashboard offers no way to cancel:\n%s", body)
	}
	before := len(e.stripe.Events())
	resp = v.post("/tracker", "/tracker/premium/cancel", url.Values{})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel premium = %d, want 303", resp.StatusCode)
	}
	if len(e.stripe.Events()) != before+1 {
		t.Fatalf("cancelling sent %d events, want the one customer.subscription.deleted", len(e.stripe.Events())-before)
	}
	_, body = v.get("/tracker?ok=premium-cancelled")
	if !strings.Contains(body, "Premium is cancelled") || !strings.Contains(body, "Free plan: 4 of 3 channels") || !strings.Contains(body, "Go premium") {
		t.Fatalf("after cancelling the dashboard is not on the free plan:\n%s", body)
	}

	// Every event delivered again, the start after the end included,
	// leaves the plan free: the start of a cancelled subscription is not a
	// start.
	for _, id := range e.stripe.Events() {
		if err := e.stripe.Deliver(ctx, id); err != nil {
			t.Fatalf("redelivered %s: %v", id, err)
		}
	}
	if _, body := v.get("/tracker"); !strings.Contains(body, "Go premium") || strings.Contains(body, "Premium: no limits.") {
		t.Fatal("redelivered events turned premium back on")
	}
}

// The one webhook endpoint refuses a body Stripe did not sign with 400 and
// acknowledges a subscription of a user the site does not have (delivering
// it again could not help).
func TestStripeWebhookRefusesABadSignatureAndAcknowledgesAnUnknownUser(t *testing.T) {
	e, _ := startPremiumEdge(t)
	ctx := context.Background()
	v := newVisitor(t, e.URL)
	signIn(t, e, v, "pat@example.com")
	hook := e.URL + "/api/events/stripe/webhook"

	body := []byte(`{"id":"evt_forged","object":"event","type":"customer.subscription.deleted","data":{"object":{"id":"sub_x","object":"subscription","metadata":{"user":"u"}}}}`)
	req, _ := http.NewRequest(http.MethodPost, hook, strings.NewReader(string(body)))
	req.Header.Set("Stripe-Signature", stripetest.Sign(body, "whsec_not_the_secret", time.Now()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged webhook = %d, want 400", resp.StatusCode)
	}

	pay, err := payments.New(payments.Config{SecretKey: e.stripe.SecretKey(), WebhookSecret: e.stripe.WebhookSecret(), APIBase: e.stripe.URL})
	if err != nil {
		t.Fatal(err)
	}
	co, err := pay.CreateSubscriptionCheckout(ctx, payments.SubscriptionRequest{
		User: "no-such-user", Email: "ghost@example.com", ProductName: "Tracker premium", Currency: "eur", AmountMinor: 900,
		SuccessURL: e.URL + "/tracker", CancelURL: e.URL + "/tracker",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.stripe.Complete(ctx, co.ID); err != nil {
		t.Fatalf("webhook for an unknown user not acknowledged: %v", err)
	}
	if _, body := v.get("/tracker"); !strings.Contains(body, "Free plan") {
		t.Fatal("someone else's subscription changed pat's plan")
	}
}

// Cancelling in Stripe's Customer Portal (reached from the dashboard)
// delivers customer.subscription.deleted, which brings the free plan's
// limits back.
func TestCancellingInTheCustomerPortalRestoresTheFreeLimits(t *testing.T) {
	e, chans := startPremiumEdge(t)
	v := newVisitor(t, e.URL)
	signIn(t, e, v, "pat@example.com")
	checkout := v.post("/tracker", "/tracker/premium", url.Values{}).Header.Get("Location")
	r, err := v.c.PostForm(checkout, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	for _, c := range chans {
		if code := trackStatus(v, c); code != http.StatusSeeOther {
			t.Fatalf("track %s on premium = %d", c, code)
		}
	}
	if _, body := v.get("/tracker"); !strings.Contains(body, "Manage billing at Stripe") {
		t.Fatalf("premium dashboard has no Customer Portal link:\n%s", body)
	}
	resp := v.post("/tracker", "/tracker/premium/portal", url.Values{})
	portal := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(portal, e.stripe.URL+"/portal/") {
		t.Fatalf("manage billing = %d → %q, want 303 to the stand-in's portal", resp.StatusCode, portal)
	}
	page, err := v.c.Get(portal)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(page.Body)
	page.Body.Close()
	m := regexp.MustCompile(`action="(/portal/[^"]+/cancel/sub_[^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("portal shows no active subscription to cancel:\n%s", b)
	}
	r, err = v.c.PostForm(e.stripe.URL+string(m[1]), url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if back := r.Header.Get("Location"); back != e.URL+"/tracker" {
		t.Fatalf("portal returns to %q", back)
	}
	_, body := v.get("/tracker")
	if !strings.Contains(body, "Free plan: 4 of 3 channels") || !strings.Contains(body, "Go premium") {
		t.Fatalf("after cancelling in the portal the dashboard is not on the free plan:\n%s", body)
	}
}
