package eventholds_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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
// holds of two seconds and unconfirmed registrations kept three.
func start(t *testing.T) (*events.Service, jetstream.JetStream) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	svc, err := events.Open(ctx, js, events.Config{BaseURL: "http://site", HoldTTL: 2 * time.Second, UnconfirmedTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := consume.New(js, consume.Config{Role: "event-holds", Stream: subjects.EventsHoldsStream, Consumer: subjects.EventsHoldsConsumer, BackoffMin: 200 * time.Millisecond},
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
	roster, err := svc.EventRegistrations(ctx, "org1", e.ID)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]events.RegStatus{}
	for _, x := range roster.Registrations {
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

// A registration its participant never confirms is deleted when its
// schedule fires, with their name and address (earlier revisions too). It
// held no seat — Confirm takes one — so the seat counts stay exact: the
// seat is there for the next participant, and a late confirmation of the
// expired registration takes none.
func TestUnconfirmedRegistrationExpiresAndItsSeatStaysAvailable(t *testing.T) {
	svc, js := start(t)
	ctx := context.Background()
	e := paidAndFree(t, svc)
	freeTicket := e.Tickets[1].ID
	left := func() int {
		av, err := svc.Available(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		return av[freeTicket]
	}
	r, err := svc.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: freeTicket, Name: "Pat Typed-By-Someone", Email: "pat@example.com", Terms: true, DataSharing: true})
	if err != nil {
		t.Fatal(err)
	}
	if roster, _ := svc.EventRegistrations(ctx, "org1", e.ID); roster.Awaiting != 1 || len(roster.Registrations) != 0 {
		t.Fatalf("roster before expiry %+v", roster)
	}
	var last error
	testenv.Eventually(t, 20*time.Second, "unconfirmed registration expires", func() bool {
		_, _, last = svc.RegistrationFor(ctx, "pat@example.com", e.ID, r.ID)
		return errors.Is(last, events.ErrNotFound)
	})
	if mine, _ := svc.MyRegistrations(ctx, "pat@example.com"); len(mine) != 0 {
		t.Errorf("pat's events still list the expired registration: %+v", mine)
	}
	if roster, _ := svc.EventRegistrations(ctx, "org1", e.ID); roster.Awaiting != 0 || len(roster.Registrations) != 0 {
		t.Errorf("roster after expiry %+v", roster)
	}
	kv, err := js.KeyValue(ctx, subjects.EventsRegistrationsBucket)
	if err != nil {
		t.Fatal(err)
	}
	hist, _ := kv.History(ctx, "reg."+e.ID+"."+r.ID)
	for _, h := range hist {
		if strings.Contains(string(h.Value()), "pat@example.com") {
			t.Errorf("revision %d still holds the address", h.Revision())
		}
	}
	if _, err := svc.Confirm(ctx, "pat@example.com", e.ID, r.ID); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("confirming the expired registration: %v, want ErrNotFound", err)
	}
	if n := left(); n != 1 {
		t.Fatalf("free seats after expiry and a late confirm = %d, want 1", n)
	}
	other, err := svc.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: freeTicket, Name: "Sam", Email: "sam@example.com", Terms: true, DataSharing: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := svc.Confirm(ctx, "sam@example.com", e.ID, other.ID); err != nil || got.Status != events.Confirmed {
		t.Fatalf("the next participant confirms: %+v %v", got, err)
	}
	if n := left(); n != 0 {
		t.Fatalf("free seats after sam confirmed = %d, want 0", n)
	}
}

// A confirmed registration outlives the expiry scheduled when it was
// submitted: the firing finds it confirmed and changes nothing.
func TestConfirmedRegistrationIsKeptWhenItsExpiryFires(t *testing.T) {
	svc, js := start(t)
	ctx := context.Background()
	e := paidAndFree(t, svc)
	r, err := svc.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[1].ID, Name: "Pat", Email: "pat@example.com", Terms: true, DataSharing: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Confirm(ctx, "pat@example.com", e.ID, r.ID); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, subjects.EventsHoldsStream, subjects.EventsHoldsConsumer)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.ConsumerInfo
	testenv.Eventually(t, 20*time.Second, "the expiry fired and was handled", func() bool {
		info, err = cons.Info(ctx)
		return err == nil && info.AckFloor.Consumer >= 1 && info.NumAckPending == 0
	})
	got, _, err := svc.RegistrationFor(ctx, "pat@example.com", e.ID, r.ID)
	if err != nil || got.Status != events.Confirmed || !got.SeatHeld {
		t.Fatalf("after the expiry fired: %+v %v", got, err)
	}
	if roster, _ := svc.EventRegistrations(ctx, "org1", e.ID); len(roster.Registrations) != 1 {
		t.Fatalf("roster %+v", roster)
	}
}
