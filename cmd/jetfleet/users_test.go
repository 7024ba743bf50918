package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/payments"
	"jetfleet/internal/payments/stripetest"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// `jetfleet users premium --off` on a user whose premium a Stripe
// subscription pays for cancels the subscription, then takes premium away;
// run again it changes nothing and fails nothing. Without a way to reach
// Stripe it refuses and changes nothing, so nobody keeps being billed for
// a plan they lost.
func TestUsersPremiumOffCancelsTheStripeSubscription(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	stripe, err := stripetest.Start(stripetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer stripe.Close()
	pay, err := payments.New(payments.Config{SecretKey: stripe.SecretKey(), WebhookSecret: stripe.WebhookSecret(), APIBase: stripe.URL})
	if err != nil {
		t.Fatal(err)
	}
	store, err := accounts.Open(ctx, js, accounts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := store.EnsureUser(ctx, "sub@example.com")
	if err != nil {
		t.Fatal(err)
	}
	co, err := pay.CreateSubscriptionCheckout(ctx, payments.SubscriptionRequest{User: u.ID, Email: u.Email, ProductName: "Tracker premium",
		Currency: "eur", AmountMinor: 900, SuccessURL: "http://site/tracker", CancelURL: "http://site/tracker"})
	if err != nil {
		t.Fatal(err)
	}
	id := co.URL[strings.LastIndex(co.URL, "/")+1:]
	if _, err := stripe.Complete(ctx, id); err != nil {
		t.Fatal(err)
	}
	cs, _ := stripe.Session(id)
	if _, err := store.SetSubscription(ctx, u.Email, cs.Subscription); err != nil {
		t.Fatal(err)
	}

	noStripe := map[string]string{"NATS_URL": srv.URL, "LOG_LEVEL": "warn", "DATA_DIR": t.TempDir()}
	var out bytes.Buffer
	err = run(ctx, []string{"users", "premium", "--off", u.Email}, env(noStripe), &out)
	if err == nil || !strings.Contains(err.Error(), "STRIPE_SECRET_KEY") {
		t.Fatalf("premium --off without Stripe: err = %v, want a refusal naming STRIPE_SECRET_KEY", err)
	}
	if got, _ := store.User(ctx, u.ID); !got.Premium || got.Subscription != cs.Subscription {
		t.Fatalf("refused premium --off changed the user: %+v", got)
	}

	// Beside `jetfleet dev`: the stand-in's address in DATA_DIR, as dev
	// writes it, and no Stripe settings.
	dataDir := t.TempDir()
	b, _ := json.Marshal(stripeStandIn{APIBase: stripe.URL, SecretKey: stripe.SecretKey(), WebhookSecret: stripe.WebhookSecret()})
	if err := os.WriteFile(filepath.Join(dataDir, stripeStandInFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	got := runCmd(t, map[string]string{"NATS_URL": srv.URL, "LOG_LEVEL": "warn", "DATA_DIR": dataDir}, "users", "premium", "--off", u.Email)
	if !strings.Contains(got, "cancelled Stripe subscription "+cs.Subscription) || !strings.Contains(got, "premium false") {
		t.Fatalf("premium --off:\n%s", got)
	}
	if active, err := pay.SubscriptionActive(ctx, cs.Subscription); err != nil || active {
		t.Fatalf("subscription still active at Stripe after premium --off (%v)", err)
	}
	if got, _ := store.User(ctx, u.ID); got.Premium || got.Subscription != "" {
		t.Fatalf("user after premium --off: %+v", got)
	}
	// With STRIPE_SECRET_KEY, again: nothing left to cancel, nothing fails.
	vars := map[string]string{"NATS_URL": srv.URL, "LOG_LEVEL": "warn",
		"STRIPE_SECRET_KEY": stripe.SecretKey(), "STRIPE_WEBHOOK_SECRET": stripe.WebhookSecret(), "STRIPE_API_BASE": stripe.URL}
	if _, err := store.SetSubscription(ctx, u.Email, cs.Subscription); err != nil {
		t.Fatal(err)
	}
	if again := runCmd(t, vars, "users", "premium", "--off", u.Email); strings.Contains(again, "cancelled") || !strings.Contains(again, "premium false") {
		t.Fatalf("second premium --off:\n%s", again)
	}
}
