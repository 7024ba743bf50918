// Package eventholds is the event-holds worker role: it consumes what the
// one-shot schedules on subjects.EventHoldsStream fire when a paid ticket's
// seat hold runs out, and releases the seat if the payment never came; and
// what they fire when a registration waited a day for its participant to
// confirm it, and deletes it if they never did.
package eventholds

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/events"
	mailer "jetfleet/internal/mail"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Handler releases expired holds and expires unconfirmed registrations
// through svc.
func Handler(svc *events.Service) consume.Handler {
	return func(ctx context.Context, msg jetstream.Msg) error {
		var h subjects.EventsHoldExpiry
		if err := json.Unmarshal(msg.Data(), &h); err != nil {
			return consume.Permanentf("decode hold expiry: %v", err)
		}
		if h.Unconfirmed {
			// Nothing left to expire (confirmed, cancelled, gone) is not an
			// error; before its time (a clock ahead of ours) it is retried.
			_, err := svc.ExpireUnconfirmed(ctx, h.EventID, h.RegistrationID)
			return err
		}
		_, err := svc.ReleaseHold(ctx, events.HoldRelease{EventID: h.EventID, RegID: h.RegistrationID})
		if errors.Is(err, events.ErrNotFound) {
			return consume.Permanentf("hold of unknown registration %s/%s", h.EventID, h.RegistrationID)
		}
		// ErrHoldNotDue (a clock ahead of ours) is retried with backoff.
		return err
	}
}

// Roles is the event-holds role. baseURL is the site's, for the links in
// the mail a released hold sends.
func Roles(baseURL string) []consume.Role {
	return []consume.Role{{
		Name: "event-holds",
		Consumer: consume.Config{
			Role: "event-holds", Stream: subjects.EventsHoldsStream, Consumer: subjects.EventsHoldsConsumer,
			Batch: 32, Concurrency: 4, BackoffMin: time.Second, BackoffMax: time.Minute,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			svc, err := events.Open(ctx, d.JS, events.Config{
				BaseURL: baseURL, Log: d.Log.With("role", "event-holds"),
				Mail: mailer.Enqueuer(d.JS),
			})
			if err != nil {
				return nil, err
			}
			return Handler(svc), nil
		},
	}}
}
