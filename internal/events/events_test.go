package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/events"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

type mailbox struct {
	mu   sync.Mutex
	sent []subjects.Mail
}

func (m *mailbox) send(_ context.Context, x subjects.Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, x)
	return nil
}

func (m *mailbox) count() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.sent) }

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func open(t *testing.T) (*events.Service, jetstream.JetStream, *mailbox) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	mb := &mailbox{}
	s, err := events.Open(ctx, js, events.Config{BaseURL: "http://site", Mail: mb.send, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s, js, mb
}

func validInput() events.EventInput {
	return events.EventInput{
		Title: "Go Hack Night", Description: "Build things", BusinessType: "technology",
		Start: "2026-12-05T18:00", End: "2026-12-05T22:00", TimeZone: "Europe/Berlin", Capacity: "100",
	}
}

// liveEvent creates and publishes an event of uid with the given tickets.
func liveEvent(t *testing.T, s *events.Service, uid string, capacity int, tickets ...events.TicketInput) events.Event {
	t.Helper()
	ctx := context.Background()
	in := validInput()
	in.Capacity = fmt.Sprint(capacity)
	e, err := s.CreateEvent(ctx, uid, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range tickets {
		if e, err = s.AddTicketType(ctx, uid, e.ID, ti); err != nil {
			t.Fatal(err)
		}
	}
	if e, err = s.Publish(ctx, uid, e.ID); err != nil {
		t.Fatal(err)
	}
	return e
}

func free(q int) events.TicketInput {
	return events.TicketInput{Name: "Free", Price: "0", Quantity: fmt.Sprint(q)}
}

func TestCreateEventStoresTimesInTheChosenZone(t *testing.T) {
	s, _, _ := open(t)
	e, err := s.CreateEvent(context.Background(), "org1", validInput())
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != events.Draft {
		t.Errorf("status %s, want draft", e.Status)
	}
	if want := time.Date(2026, 12, 5, 17, 0, 0, 0, time.UTC); !e.Start.Equal(want) {
		t.Errorf("start %s, want %s (18:00 Berlin)", e.Start, want)
	}
	if got := events.InputOf(e).Start; got != "2026-12-05T18:00" {
		t.Errorf("edit form start %q", got)
	}
}

func TestInvalidEventNamesEveryFieldAndWritesNothing(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	_, err := s.CreateEvent(ctx, "org1", events.EventInput{Title: " ", BusinessType: "crypto", Start: "tomorrow", End: "2026-12-05T22:00", TimeZone: "Mars/Olympus", Capacity: "-3", StreamURL: "javascript:alert(1)"})
	var v *events.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	for _, f := range []string{"title", "business_type", "start", "time_zone", "capacity", "stream_url"} {
		if v.Fields[f] == "" {
			t.Errorf("no message for %s (got %v)", f, v.Fields)
		}
	}
	list, err := s.OrganiserEvents(ctx, "org1")
	if err != nil || len(list) != 0 {
		t.Fatalf("after a refused create the organiser has %d events (%v)", len(list), err)
	}
	// End before start and start in the past.
	in := validInput()
	in.End = "2026-12-05T17:00"
	if _, err := s.CreateEvent(ctx, "org1", in); !errors.As(err, &v) || v.Fields["end"] == "" {
		t.Errorf("end before start: %v", err)
	}
	in = validInput()
	in.Start, in.End = "2026-01-01T10:00", "2026-01-01T11:00"
	if _, err := s.CreateEvent(ctx, "org1", in); !errors.As(err, &v) || v.Fields["start"] == "" {
		t.Errorf("start in the past: %v", err)
	}
}

func TestFailedEditLeavesTheEventUnchanged(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e, _ := s.CreateEvent(ctx, "org1", validInput())
	in := validInput()
	in.Title = "New title"
	in.Capacity = "zero"
	if _, err := s.UpdateEvent(ctx, "org1", e.ID, in); err == nil {
		t.Fatal("edit with a bad capacity succeeded")
	}
	got, _ := s.EventFor(ctx, "org1", e.ID)
	if got.Title != "Go Hack Night" {
		t.Errorf("title changed to %q by a refused edit", got.Title)
	}
}

func TestOrganisersSeeAndChangeOnlyTheirOwnEvents(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	mine, _ := s.CreateEvent(ctx, "alice", validInput())
	if _, err := s.CreateEvent(ctx, "bob", validInput()); err != nil {
		t.Fatal(err)
	}
	list, _ := s.OrganiserEvents(ctx, "alice")
	if len(list) != 1 || list[0].ID != mine.ID {
		t.Fatalf("alice's events = %v", list)
	}
	if _, err := s.EventFor(ctx, "bob", mine.ID); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("bob reads alice's event: %v", err)
	}
	if _, err := s.UpdateEvent(ctx, "bob", mine.ID, validInput()); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("bob edits alice's event: %v", err)
	}
	if _, err := s.AddTicketType(ctx, "bob", mine.ID, free(5)); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("bob adds tickets to alice's event: %v", err)
	}
	if _, err := s.Publish(ctx, "bob", mine.ID); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("bob publishes alice's event: %v", err)
	}
	if _, err := s.EventRegistrations(ctx, "bob", mine.ID); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("bob lists alice's registrations: %v", err)
	}
	if _, err := s.PublicEvent(ctx, mine.ID); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("a draft is public: %v", err)
	}
}

func TestPublishWithPaidTicketsNeedsConnectedStripe(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e, _ := s.CreateEvent(ctx, "org1", validInput())
	if _, err := s.Publish(ctx, "org1", e.ID); !errors.Is(err, events.ErrNoTickets) {
		t.Errorf("publish without tickets: %v", err)
	}
	e, err := s.AddTicketType(ctx, "org1", e.ID, events.TicketInput{Name: "Supporter", Price: "12.50", Currency: "eur", Quantity: "10"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Tickets[0].PriceMinor != 1250 {
		t.Errorf("price %d minor units, want 1250", e.Tickets[0].PriceMinor)
	}
	if _, err := s.Publish(ctx, "org1", e.ID); !errors.Is(err, events.ErrStripeRequired) {
		t.Fatalf("publish with paid tickets and no Stripe: %v", err)
	}
	if _, err := s.SetStripeAccount(ctx, "org1", "o@example.com", "acct_1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, "org1", e.ID); !errors.Is(err, events.ErrStripeRequired) {
		t.Fatalf("publish with onboarding unfinished: %v", err)
	}
	s.SetStripeAccount(ctx, "org1", "o@example.com", "acct_1", true)
	if e, err = s.Publish(ctx, "org1", e.ID); err != nil || e.Status != events.Live {
		t.Fatalf("publish with Stripe ready: %v %s", err, e.Status)
	}
}

func TestTicketValidation(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e, _ := s.CreateEvent(ctx, "org1", validInput())
	for name, tc := range map[string]struct {
		in    events.TicketInput
		field string
	}{
		"no name":          {events.TicketInput{Price: "0", Quantity: "1"}, "ticket_name"},
		"bad price":        {events.TicketInput{Name: "x", Price: "12,50", Quantity: "1"}, "price"},
		"three decimals":   {events.TicketInput{Name: "x", Price: "1.505", Currency: "eur", Quantity: "1"}, "price"},
		"paid no currency": {events.TicketInput{Name: "x", Price: "5", Quantity: "1"}, "currency"},
		"no quantity":      {events.TicketInput{Name: "x", Price: "0", Quantity: "0"}, "quantity"},
		"sale after event": {events.TicketInput{Name: "x", Price: "0", Quantity: "1", SaleEnd: "2026-12-24T10:00"}, "sale_end"},
	} {
		_, err := s.AddTicketType(ctx, "org1", e.ID, tc.in)
		var v *events.ValidationError
		if !errors.As(err, &v) || v.Fields[tc.field] == "" {
			t.Errorf("%s: err %v, want a message on %s", name, err, tc.field)
		}
	}
	got, _ := s.EventFor(ctx, "org1", e.ID)
	if len(got.Tickets) != 0 {
		t.Errorf("refused ticket types were saved: %v", got.Tickets)
	}
}

func register(t *testing.T, s *events.Service, e events.Event, email string) events.Registration {
	t.Helper()
	r, err := s.Register(context.Background(), e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[0].ID, Name: "Pat", Email: email, Terms: true, DataSharing: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistrationNeedsBothConsentsAndStoresTheirVersion(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	_, err := s.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[0].ID, Name: "Pat", Email: "pat@example.com", Terms: true})
	var v *events.ValidationError
	if !errors.As(err, &v) || v.Fields["data_sharing"] == "" {
		t.Fatalf("register without data-sharing consent: %v", err)
	}
	_, err = s.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: "nope", Name: "", Email: "pat", DataSharing: true})
	if !errors.As(err, &v) || v.Fields["terms"] == "" || v.Fields["email"] == "" || v.Fields["name"] == "" || v.Fields["ticket"] == "" {
		t.Fatalf("bad registration: %v", err)
	}
	if mine, _ := s.MyRegistrations(ctx, "pat@example.com"); len(mine) != 0 {
		t.Fatalf("refused registrations were saved: %v", mine)
	}
	// Submitting the form records no consent: anyone can type anyone's
	// address. The participant's confirmation does.
	r := register(t, s, e, "Pat@Example.com")
	if r.Status != events.Pending || !r.Consent.At.IsZero() || r.Consent.Terms || r.Consent.DataSharing {
		t.Errorf("consent recorded before confirmation: %+v", r.Consent)
	}
	r, err = s.Confirm(ctx, "pat@example.com", e.ID, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Consent.Version != events.ConsentVersion || !r.Consent.At.Equal(now) || !r.Consent.DataSharing || !r.Consent.Terms {
		t.Errorf("consent after confirmation %+v", r.Consent)
	}
}

func TestFreeRegistrationConfirmedByItsParticipantOnly(t *testing.T) {
	s, _, mb := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	r := register(t, s, e, "pat@example.com")
	if _, err := s.Confirm(ctx, "mallory@example.com", e.ID, r.ID); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("someone else confirms: %v", err)
	}
	if _, _, err := s.RegistrationFor(ctx, "mallory@example.com", e.ID, r.ID); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("someone else reads the registration: %v", err)
	}
	got, err := s.Confirm(ctx, "pat@example.com", e.ID, r.ID)
	if err != nil || got.Status != events.Confirmed {
		t.Fatalf("confirm: %v %s", err, got.Status)
	}
	if _, err := s.Confirm(ctx, "pat@example.com", e.ID, r.ID); err != nil {
		t.Fatal(err)
	}
	av, _ := s.Available(ctx, e)
	if av[e.Tickets[0].ID] != 9 {
		t.Errorf("confirming twice took %d seats", 10-av[e.Tickets[0].ID])
	}
	if mb.count() != 1 {
		t.Errorf("%d confirmation mails, want 1", mb.count())
	}
	if mine, _ := s.MyRegistrations(ctx, "mallory@example.com"); len(mine) != 0 {
		t.Errorf("mallory sees %d registrations", len(mine))
	}
	mine, _ := s.MyRegistrations(ctx, "pat@example.com")
	if len(mine) != 1 || mine[0].Event.ID != e.ID {
		t.Errorf("pat's registrations %v", mine)
	}
	roster, _ := s.EventRegistrations(ctx, "org1", e.ID)
	if regs := roster.Registrations; len(regs) != 1 || regs[0].Email != "pat@example.com" || roster.Awaiting != 0 {
		t.Errorf("organiser sees %+v", roster)
	}
}

func TestConcurrentRegistrationsNeverOversellTheLastSeats(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	// 5 seats in all; the ticket type alone would allow 50.
	e := liveEvent(t, s, "org1", 5, free(50))
	const n = 40
	regs := make([]events.Registration, n)
	for i := range regs {
		regs[i] = register(t, s, e, fmt.Sprintf("p%d@example.com", i))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	confirmed, soldOut := 0, 0
	for i := range regs {
		wg.Go(func() {
			_, err := s.Confirm(ctx, fmt.Sprintf("p%d@example.com", i), e.ID, regs[i].ID)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				confirmed++
			case errors.Is(err, events.ErrSoldOut):
				soldOut++
			default:
				t.Errorf("confirm %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if confirmed != 5 || soldOut != n-5 {
		t.Fatalf("%d confirmed, %d sold out; want 5 and %d", confirmed, soldOut, n-5)
	}
	av, _ := s.Available(ctx, e)
	if av[e.Tickets[0].ID] != 0 {
		t.Errorf("%d seats left", av[e.Tickets[0].ID])
	}
}

func TestTicketQuantityLimitsItsType(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 100, free(1))
	a, b := register(t, s, e, "a@example.com"), register(t, s, e, "b@example.com")
	if _, err := s.Confirm(ctx, "a@example.com", e.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Confirm(ctx, "b@example.com", e.ID, b.ID); !errors.Is(err, events.ErrSoldOut) {
		t.Fatalf("second seat of a 1-ticket type: %v", err)
	}
	// Cancelling frees the seat for someone else.
	if _, err := s.Cancel(ctx, "a@example.com", e.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Confirm(ctx, "b@example.com", e.ID, b.ID); err != nil {
		t.Fatalf("after a cancellation: %v", err)
	}
}

func paidEvent(t *testing.T, s *events.Service) events.Event {
	s.SetStripeAccount(context.Background(), "org1", "o@example.com", "acct_1", true)
	return liveEvent(t, s, "org1", 10, events.TicketInput{Name: "Supporter", Price: "20", Currency: "eur", Quantity: "10"})
}

func TestPaymentDeliveredTwiceMarksPaidOnce(t *testing.T) {
	s, js, mb := open(t)
	ctx := context.Background()
	e := paidEvent(t, s)
	r := register(t, s, e, "pat@example.com")
	r, err := s.Confirm(ctx, "pat@example.com", e.ID, r.ID)
	if err != nil || r.Status != events.Pending || !r.SeatHeld {
		t.Fatalf("confirming a paid ticket: %v %+v", err, r)
	}
	if mb.count() != 0 {
		t.Errorf("mail before payment")
	}
	if err := s.AttachCheckout(ctx, "pat@example.com", e.ID, r.ID, "cs_1", ""); err != nil {
		t.Fatal(err)
	}
	p := events.Payment{SessionID: "cs_1", EventID: e.ID, RegID: r.ID, AmountMinor: 2000, Currency: "eur"}
	if ok, err := s.MarkPaid(ctx, events.Payment{SessionID: "cs_1", EventID: e.ID, RegID: r.ID, AmountMinor: 1, Currency: "eur"}); ok || !errors.Is(err, events.ErrPaymentMismatch) {
		t.Errorf("wrong amount: %v %v", ok, err)
	}
	if ok, err := s.MarkPaid(ctx, p); !ok || err != nil {
		t.Fatalf("first delivery: %v %v", ok, err)
	}
	if ok, err := s.MarkPaid(ctx, p); ok || err != nil {
		t.Fatalf("second delivery: %v %v", ok, err)
	}
	got, _, _ := s.RegistrationFor(ctx, "pat@example.com", e.ID, r.ID)
	if got.Status != events.Paid {
		t.Errorf("status %s", got.Status)
	}
	if mb.count() != 1 {
		t.Errorf("%d mails, want 1", mb.count())
	}
	// One paid domain event on the stream.
	info, err := js.Stream(ctx, subjects.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := info.GetLastMsgForSubject(ctx, subjects.EventsSubject(subjects.EventsKindPaid, e.ID))
	if err != nil {
		t.Fatal(err)
	}
	var de subjects.EventsDomainEvent
	json.Unmarshal(msg.Data, &de)
	if de.RegistrationID != r.ID || de.AmountMinor != 2000 || de.Currency != "eur" {
		t.Errorf("paid event %+v", de)
	}
	st, _ := info.Info(ctx, jetstream.WithSubjectFilter(subjects.EventsSubject(subjects.EventsKindPaid, "*")))
	if n := st.State.Subjects[subjects.EventsSubject(subjects.EventsKindPaid, e.ID)]; n != 1 {
		t.Errorf("%d paid events, want 1", n)
	}
}

func TestCatalogFollowsPublishingAndFilters(t *testing.T) {
	s, js, _ := open(t)
	ctx := testenv.Context(t, 10*time.Second)
	cat, err := events.WatchCatalog(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	tech := liveEvent(t, s, "org1", 10, free(10))
	in := validInput()
	in.BusinessType, in.Start, in.End = "health", "2026-12-20T09:00", "2026-12-20T10:00"
	draft, _ := s.CreateEvent(ctx, "org1", in)
	health, _ := s.CreateEvent(ctx, "org1", in)
	s.AddTicketType(ctx, "org1", health.ID, free(1))
	s.Publish(ctx, "org1", health.ID)
	testenv.Eventually(t, 5*time.Second, "two live events in the view", func() bool { return cat.Len() == 2 })
	all := cat.Upcoming(now, events.Filter{})
	if len(all) != 2 || all[0].ID != tech.ID || all[1].ID != health.ID {
		t.Fatalf("upcoming %v", all)
	}
	for _, e := range all {
		if e.ID == draft.ID {
			t.Error("a draft is listed")
		}
	}
	if got := cat.Upcoming(now, events.Filter{BusinessType: "health"}); len(got) != 1 || got[0].ID != health.ID {
		t.Errorf("health filter: %v", got)
	}
	day := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	if got := cat.Upcoming(now, events.Filter{From: day, To: day.AddDate(0, 0, 1)}); len(got) != 1 || got[0].ID != tech.ID {
		t.Errorf("date filter: %v", got)
	}
	// An ended event is no longer upcoming.
	if got := cat.Upcoming(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC), events.Filter{}); len(got) != 1 {
		t.Errorf("after the first event: %v", got)
	}
}

// Titles, ticket names and participants' names end up in mail headers: a
// control character in any of them is refused with a message, and nothing
// is written.
func TestLineBreaksAreRefusedWhereTheyWouldReachAHeader(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	for _, bad := range []string{"Hack\rNight", "Hack\nNight", "Hack\r\nBcc: x@example.com", "Hack\tNight", "Hack\x00Night"} {
		in := validInput()
		in.Title = bad
		var v *events.ValidationError
		if _, err := s.CreateEvent(ctx, "org1", in); !errors.As(err, &v) || !strings.Contains(v.Fields["title"], "one line") {
			t.Errorf("title %q: %v", bad, err)
		}
		if _, err := s.UpdateEvent(ctx, "org1", e.ID, in); !errors.As(err, &v) || v.Fields["title"] == "" {
			t.Errorf("edited title %q: %v", bad, err)
		}
		if _, err := s.AddTicketType(ctx, "org1", e.ID, events.TicketInput{Name: bad, Price: "0", Quantity: "1"}); !errors.As(err, &v) || v.Fields["ticket_name"] == "" {
			t.Errorf("ticket name %q: %v", bad, err)
		}
		if _, err := s.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[0].ID, Name: bad, Email: "pat@example.com", Terms: true, DataSharing: true}); !errors.As(err, &v) || v.Fields["name"] == "" {
			t.Errorf("participant name %q: %v", bad, err)
		}
	}
	if list, _ := s.OrganiserEvents(ctx, "org1"); len(list) != 1 || list[0].Title != "Go Hack Night" || len(list[0].Tickets) != 1 {
		t.Errorf("refused input was written: %+v", list)
	}
	if mine, _ := s.MyRegistrations(ctx, "pat@example.com"); len(mine) != 0 {
		t.Errorf("refused registrations were saved: %+v", mine)
	}
}

// The organiser sees who confirmed; of the rest, only how many wait.
func TestOrganiserRosterShowsOnlyConfirmedRegistrations(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	register(t, s, e, "typed-by-someone@example.com")
	r := register(t, s, e, "pat@example.com")
	if _, err := s.Confirm(ctx, "pat@example.com", e.ID, r.ID); err != nil {
		t.Fatal(err)
	}
	cancelled := register(t, s, e, "sam@example.com")
	if _, err := s.Cancel(ctx, "sam@example.com", e.ID, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	roster, err := s.EventRegistrations(ctx, "org1", e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if roster.Awaiting != 1 || len(roster.Registrations) != 1 || roster.Registrations[0].Email != "pat@example.com" {
		t.Fatalf("roster %+v, want pat and 1 awaiting", roster)
	}
}

// A malformed id never reaches a KV key: every call taking one answers
// ErrNotFound.
func TestMalformedIdsAreNotFound(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	for _, bad := range []string{"", "a.b", "*", "abcdefghijklmn.p", "abcdefghijklmno>"} {
		if _, err := s.UpdateEvent(ctx, "org1", bad, validInput()); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("UpdateEvent(%q): %v", bad, err)
		}
		if _, err := s.RemoveTicketType(ctx, "org1", bad, e.Tickets[0].ID); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("RemoveTicketType(event %q): %v", bad, err)
		}
		if _, err := s.RemoveTicketType(ctx, "org1", e.ID, bad); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("RemoveTicketType(ticket %q): %v", bad, err)
		}
		if _, err := s.EventRegistrations(ctx, "org1", bad); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("EventRegistrations(%q): %v", bad, err)
		}
		if ok, err := s.ExpireUnconfirmed(ctx, bad, bad); ok || err != nil {
			t.Errorf("ExpireUnconfirmed(%q): %v %v", bad, ok, err)
		}
	}
}

func TestLiveAppMembersAreConfirmedParticipantsAndTheOrganiser(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	confirmed := register(t, s, e, "Ada@Example.com")
	if _, err := s.Confirm(ctx, "ada@example.com", e.ID, confirmed.ID); err != nil {
		t.Fatal(err)
	}
	register(t, s, e, "bob@example.com") // never confirmed

	m, _, err := s.Member(ctx, e.ID, "u-ada", "ADA@example.com")
	if err != nil || m.Admin || m.RegistrationID != confirmed.ID || m.Name != confirmed.Name {
		t.Fatalf("confirmed participant: %+v, %v; want a participant with registration %s", m, err, confirmed.ID)
	}
	if m, _, err := s.Member(ctx, e.ID, "org1", "org@example.com"); err != nil || !m.Admin {
		t.Fatalf("organiser: %+v, %v; want an admin", m, err)
	}
	for _, who := range []struct{ uid, email string }{{"u-bob", "bob@example.com"}, {"u-eve", "eve@example.com"}, {"", ""}} {
		if _, _, err := s.Member(ctx, e.ID, who.uid, who.email); !errors.Is(err, events.ErrNotMember) {
			t.Errorf("%s: err = %v; want ErrNotMember", who.email, err)
		}
	}
	if _, _, err := s.Member(ctx, "nosuchevent", "org1", ""); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("unknown event: err = %v; want ErrNotFound", err)
	}
}
