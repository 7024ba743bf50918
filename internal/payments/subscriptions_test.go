package payments_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"jetfleet/internal/payments"
)

// A premium subscription: paying its Checkout Session delivers an event
// that names the user and starts it; cancelling delivers one that ends it.
// The ticket parser ignores the subscription's checkout.
func TestSubscriptionStartsOnPaymentAndEndsOnCancelNamingTheUser(t *testing.T) {
	var (
		mu     sync.Mutex
		got    []payments.SubscriptionEvent
		ticket []payments.CheckoutCompleted
		c      *payments.Client
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get("Stripe-Signature")
		ev, ok, err := c.ParseSubscriptionWebhook(body, sig)
		if err != nil || !ok {
			http.Error(w, "bad", 400)
			return
		}
		cc, isTicket, _ := c.ParseWebhook(body, sig)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev)
		if isTicket {
			ticket = append(ticket, cc)
		}
	}))
	defer hook.Close()
	srv, cl := start(t, hook.URL)
	c = cl
	ctx := context.Background()
	co, err := c.CreateSubscriptionCheckout(ctx, payments.SubscriptionRequest{
		User: "u1", Email: "p@example.com", ProductName: "Tracker premium", Currency: "eur", AmountMinor: 900,
		SuccessURL: "http://site/premium?ok=1", CancelURL: "http://site/premium", IdempotencyKey: "premium:u1:1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Complete(ctx, co.ID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != 1 || !got[0].Active || got[0].User != "u1" || got[0].Subscription == "" || got[0].Customer == "" {
		t.Fatalf("after paying: events %+v, want one starting u1's subscription", got)
	}
	sub := got[0].Subscription
	mu.Unlock()
	if _, err := srv.CancelSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[1].Active || got[1].User != "u1" || got[1].Subscription != sub {
		t.Fatalf("after cancelling: events %+v, want the second ending u1's %s", got, sub)
	}
	if len(ticket) != 0 {
		t.Errorf("the ticket parser took a subscription for a payment: %+v", ticket)
	}
}
