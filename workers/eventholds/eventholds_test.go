package eventholds_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/events"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/eventholds"
)

// start runs the event-holds role against a fresh JetStream, with seat
// holds of two seconds.
func start(t *testing.T) (*events.Service, jetstream.JetStream) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	svc, err := events.Open(ctx, js, events.Config{BaseURL: "http://site", HoldTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := consume.New(js, consume.Config{Role: "event-holds", Stream: subjects.EventHoldsStream, Consumer: subjects.EventHoldsConsumer, BackoffMin: 200 * time.Millisecond},
		eventholds.Handler(svc), consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return svc, js
}

// paidAndFree is a live event with one seat, sold as a paid or a free ticket.
func paidAndFree(t *testing.T, svc *events.Service) events.Event {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.SetStripeAccount(ctx, "org1", "org@example.com", "acct_1", true); err != nil {
		t.Fatal(err)
	}
	start := time.Now().AddDate(0, 0, 10).Format("2006-01-02")
	e, err := svc.CreateEvent(ctx, "org1", events.EventInput{Title: "Hack", BusinessType: "technology", Start: start + "T18:00", End: start + "T20:00", TimeZone: "UTC", Capacity: "1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range []events.TicketInput{{Name: "Supporter", Price: "20", Currency: "eur", Quantity: "1"}, {Name: "Free", Price: "0", Quantity: "1"}} {
		if e, err = svc.AddTicketType(ctx, "org1", e.ID, ti); err != nil {
			t.Fatal(err)
		}
	}
	if e, err = svc.Publish(ctx, "org1", e.ID); err != nil {
		t.Fatal(err)
	}
	return e
}

func hold(t *testing.T, svc *events.Service, e events.Event, email, session string) events.Registration {
	t.Helper()
	ctx := context.Background()
	r, err := svc.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[0].ID, Name: "Pat", Email: email, Terms: true, DataSharing: true})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = svc.Confirm(ctx, email, e.ID, r.ID); err != nil || !r.SeatHeld || r.Status != events.Pending {
		t.Fatalf("confirm: %+v %v", r, err)
	}
	if err := svc.AttachCheckout(ctx, email, e.ID, r.ID, session, ""); err != nil {
		t.Fatal(err)
	}
	return r
}

func seatsLeft(t *testing.T, svc *events.Service, e events.Event) int {
	av, err := svc.Available(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return av[e.Tickets[0].ID]
}

func TestUnpaidHoldIsReleasedByItsScheduleAndALatePaymentRetakesAFreeSeat(t *testing.T) {
	svc, _ := start(t)
	ctx := context.Background()
	e := paidAndFree(t, svc)
	r := hold(t, svc, e, "pat@example.com", "cs_test_1")
	if n := seatsLeft(t, svc, e); n != 0 {
		t.Fatalf("seats left while held = %d", n)
	}
	testenv.Eventually(t, 15*time.Second, "hold released", func() bool { return seatsLeft(t, svc, e) == 1 })
	got, _, err := svc.RegistrationFor(ctx, "pat@example.com", e.ID, r.ID)
	if err != nil || got.Status != events.Expired || got.SeatHeld {
		t.Fatalf("after release: %+v %v", got, err)
	}
	// The payment arrives after all, and the seat is still free: it is taken.
	changed, err := svc.MarkPaid(ctx, events.Payment{SessionID: "cs_test_1", EventID: e.ID, RegID: r.ID, AmountMinor: 2000, Currency: "eur"})
	if err != nil || !changed {
		t.Fatalf("late payment: %v %v", changed, err)
	}
	got, _, _ = svc.RegistrationFor(ctx, "pat@example.com", e.ID, r.ID)
	if got.Status != events.Paid || !got.SeatHeld || seatsLeft(t, svc, e) != 0 {
		t.Fatalf("late payment with a free seat: %+v, %d left", got, seatsLeft(t, svc, e))
	}
}

func TestPaymentAfterReleaseWhenTheSeatIsGoneIsMarkedRefundDue(t *testing.T) {
	svc, _ := start(t)
	ctx := context.Background()
	e := paidAndFree(t, svc)
	r := hold(t, svc, e, "pat@example.com", "cs_test_2")
	testenv.Eventually(t, 15*time.Second, "hold released", func() bool { return seatsLeft(t, svc, e) == 1 })
	// Someone else takes the last seat.
	other, err := svc.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[1].ID, Name: "Sam", Email: "sam@example.com", Terms: true, DataSharing: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Confirm(ctx, "sam@example.com", e.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	for range 2 { // Stripe delivers at least once
		if _, err := svc.MarkPaid(ctx, events.Payment{SessionID: "cs_test_2", EventID: e.ID, RegID: r.ID, AmountMinor: 2000, Currency: "eur"}); err != nil {
			t.Fatal(err)
		}
	}
	regs, err := svc.EventRegistrations(ctx, "org1", e.ID)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]events.RegStatus{}
	for _, x := range regs {
		statuses[x.ID] = x.Status
	}
	if statuses[r.ID] != events.RefundDue || statuses[other.ID] != events.Confirmed {
		t.Fatalf("organiser sees %v", statuses)
	}
	if n := seatsLeft(t, svc, e); n != 0 {
		t.Fatalf("seats left = %d, want 0 (never oversold)", n)
	}
}

func TestStripeExpiryReleasesOnlyTheRegistrationsOwnSession(t *testing.T) {
	svc, _ := start(t)
	ctx := context.Background()
	e := paidAndFree(t, svc)
	r := hold(t, svc, e, "pat@example.com", "cs_test_3")
	if ok, err := svc.ReleaseHold(ctx, events.HoldRelease{EventID: e.ID, RegID: r.ID, SessionID: "cs_test_other"}); ok || err != nil {
		t.Fatalf("another session's expiry released it: %v %v", ok, err)
	}
	for i := range 2 {
		ok, err := svc.ReleaseHold(ctx, events.HoldRelease{EventID: e.ID, RegID: r.ID, SessionID: "cs_test_3"})
		if err != nil || ok != (i == 0) {
			t.Fatalf("release %d: %v %v", i, ok, err)
		}
	}
	if n := seatsLeft(t, svc, e); n != 1 {
		t.Fatalf("seats left = %d, want 1 (released once)", n)
	}
}
