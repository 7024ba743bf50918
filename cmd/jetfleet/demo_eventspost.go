package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/events"
	"jetfleet/internal/payments"
	"jetfleet/subjects"
)

// demoPastTitle is the demo's past event, organised by demoOrganiser (who
// also runs the live one): sign in as them (the link is in /outbox) to see
// its analytics, fee and summary mail.
const demoPastTitle = "Demo: yesterday's hackathon"

// seedPostEventDemo gives `jetfleet dev --demo` an event that is over: a
// hackathon that ended yesterday, with registrations, heartbeats, messages,
// a help flag and submissions, and a fee card saved at the Stripe
// stand-in. Its post-event schedule fires once the engagement has reached
// ClickHouse (a minute or so after start-up), so a newcomer sees the
// schedule fire, the figures accumulate, the fee charged once and the
// summary mail in the outbox. Seeded once per data dir.
func seedPostEventDemo(ctx context.Context, js jetstream.JetStream, pay *payments.Client, log *slog.Logger) error {
	users, err := accounts.Open(ctx, js, accounts.Config{})
	if err != nil {
		return err
	}
	org, err := users.EnsureUser(ctx, demoOrganiser)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	start := now.Add(-26 * time.Hour).Truncate(time.Hour)
	end := start.Add(3 * time.Hour)
	// The service lives before the event, where it can still be created,
	// published and registered for. Its schedule is set far ahead while
	// the demo is seeded, then moved to fire as soon as the engagement is
	// stored (below).
	clock := start.Add(-50 * time.Hour)
	svc, err := events.Open(ctx, js, events.Config{Now: func() time.Time { return clock }, PostDelay: 365 * 24 * time.Hour})
	if err != nil {
		return err
	}
	mine, err := svc.OrganiserEvents(ctx, org.ID)
	if err != nil {
		return err
	}
	for _, e := range mine {
		if e.Title == demoPastTitle {
			return nil // seeded before
		}
	}
	if pay != nil {
		if err := demoSaveCard(ctx, svc, pay, org); err != nil {
			log.Warn("demo: could not save a fee card; the fee will be flagged", "err", err)
		}
	}
	e, err := svc.CreateEvent(ctx, org.ID, events.EventInput{
		Title: demoPastTitle, Description: "A past event of the demo: its figures, fee and summary mail are made after it, as for any event.",
		BusinessType: "technology", TimeZone: "UTC", Capacity: "200",
		Start: start.Format(events.FormTime), End: end.Format(events.FormTime),
	})
	if err != nil {
		return err
	}
	if e, err = svc.AddTicketType(ctx, org.ID, e.ID, events.TicketInput{Name: "Hacker", Price: "0", Quantity: "200"}); err != nil {
		return err
	}
	if e, err = svc.Publish(ctx, org.ID, e.ID); err != nil {
		return err
	}
	// 60 participants, 48 of them attend for between 3 minutes and the
	// whole three hours; 40 chat; one team asks for help.
	for i := range 60 {
		clock = clock.Add(47 * time.Minute) // registrations come in over two days
		email := fmt.Sprintf("hacker%02d@example.com", i)
		r, err := svc.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[0].ID, Name: fmt.Sprintf("Hacker %02d", i), Email: email, Terms: true, DataSharing: true})
		if err != nil {
			return err
		}
		if _, err := svc.Confirm(ctx, email, e.ID, r.ID); err != nil {
			return err
		}
		if i >= 48 {
			continue
		}
		u, err := users.EnsureUser(ctx, email)
		if err != nil {
			return err
		}
		minutes := 3 + (i*37)%178
		from := start.Add(time.Duration(i%20) * time.Minute)
		send := func(en subjects.EventsEngagement) error {
			b, _ := json.Marshal(en)
			_, err := js.Publish(ctx, subjects.EventsEngagementSubject(en.EventID, en.Kind), b, jetstream.WithMsgID(subjects.EventsEngagementMsgID(en)))
			return err
		}
		for m := range minutes {
			at := from.Add(time.Duration(m) * time.Minute)
			if err := send(subjects.EventsEngagement{Kind: subjects.EngagementHeartbeat, EventID: e.ID, ID: subjects.HeartbeatID(u.ID, at), UserID: u.ID, At: at}); err != nil {
				return err
			}
			if i < 40 && m%(7+i%5) == 0 {
				room := "main"
				if m%2 == 1 {
					room = "team" + fmt.Sprint(i%6)
				}
				if err := send(subjects.EventsEngagement{Kind: subjects.EngagementMessage, EventID: e.ID, ID: fmt.Sprintf("%d-%d", i, m), UserID: u.ID, Room: room, Ref: r.ID, At: at}); err != nil {
					return err
				}
			}
		}
		if i < 6 {
			if err := send(subjects.EventsEngagement{Kind: subjects.EngagementSubmitted, EventID: e.ID, ID: fmt.Sprintf("team%d.1", i), Ref: fmt.Sprintf("team%d", i), At: end.Add(-10 * time.Minute)}); err != nil {
				return err
			}
		}
	}
	for k, after := range map[string]time.Duration{subjects.EngagementHelpRaised: 0, subjects.EngagementHelpClaimed: 95 * time.Second, subjects.EngagementHelpResolved: 11 * time.Minute} {
		en := subjects.EventsEngagement{Kind: k, EventID: e.ID, ID: "demo-flag", Ref: "demo-flag", At: start.Add(50*time.Minute + after)}
		b, _ := json.Marshal(en)
		if _, err := js.Publish(ctx, subjects.EventsEngagementSubject(e.ID, k), b, jetstream.WithMsgID(subjects.EventsEngagementMsgID(en))); err != nil {
			return err
		}
	}
	// Once the events-engagement role has stored every row, the schedule
	// is moved (an edit of the event, as when an organiser changes its
	// end) to fire in a few seconds.
	if err := waitEngagementStored(ctx, js); err != nil {
		return err
	}
	soon, err := events.Open(ctx, js, events.Config{Now: func() time.Time { return clock }, PostDelay: time.Now().Add(5 * time.Second).Sub(end)})
	if err != nil {
		return err
	}
	if _, err := soon.UpdateEvent(ctx, org.ID, e.ID, events.InputOf(e)); err != nil {
		return err
	}
	log.Info("demo: past event seeded; its post-event steps run in a few seconds", "event", e.ID, "organiser", demoOrganiser)
	return nil
}

// waitEngagementStored waits (up to five minutes) until the
// events-engagement role has acknowledged everything published to it.
func waitEngagementStored(ctx context.Context, js jetstream.JetStream) error {
	c, err := js.Consumer(ctx, subjects.EventsEngagementStream, subjects.EventsEngagementConsumer)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("engagement still waiting after 5 minutes: %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// demoSaveCard saves the stand-in's succeeding test card for org's fees,
// as the organiser would on Stripe's setup page.
func demoSaveCard(ctx context.Context, svc *events.Service, pay *payments.Client, org accounts.User) error {
	cus, err := pay.CreateCustomer(ctx, org.Email, org.ID, "jetfleet-fee-customer-"+org.ID)
	if err != nil {
		return err
	}
	co, err := pay.CreateSetupCheckout(ctx, payments.SetupRequest{Customer: cus, Currency: "eur", SuccessURL: "http://localhost/", CancelURL: "http://localhost/"})
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, co.URL, strings.NewReader(url.Values{"card": {"4242424242424242"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	res, err := pay.SetupOutcome(ctx, co.ID)
	if err != nil {
		return err
	}
	_, err = svc.SetFeePaymentMethod(ctx, org.ID, res.Customer, res.PaymentMethod)
	return err
}
