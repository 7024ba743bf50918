package main

import (
	"context"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/events"
	"jetfleet/internal/gdpr"
	mailer "jetfleet/internal/mail"
	"jetfleet/internal/personaldata"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/eventholds"
	workergdpr "jetfleet/workers/gdpr"
)

// eventsRoles are the worker roles of the Events product: GDPR requests
// (for every product, through the personal-data registry) and the expiry
// of their exports, and releasing seat holds whose payment never came.
func eventsRoles() []role {
	return []role{{
		name: "gdpr",
		consumer: consume.Config{
			// A few requests at a time: 500 participants asking at once
			// are worked through in turn.
			Role: "gdpr", Stream: subjects.GDPRStream, Consumer: subjects.GDPRConsumer,
			Batch: 4, Concurrency: 2, BackoffMin: 2 * time.Second, BackoffMax: 10 * time.Minute,
		},
		build: func(ctx context.Context, d roleDeps) (consume.Handler, error) {
			log := d.log.With("role", "gdpr")
			users, err := accounts.Open(ctx, d.js, accounts.Config{})
			if err != nil {
				return nil, err
			}
			svc, err := events.Open(ctx, d.js, events.Config{BaseURL: d.cfg.BaseURL, Log: log})
			if err != nil {
				return nil, err
			}
			reqs, err := gdpr.Open(ctx, d.js, nil)
			if err != nil {
				return nil, err
			}
			registry, err := personaldata.Registry(ctx, personaldata.Deps{JS: d.js, Events: svc, Blobs: d.blobs})
			if err != nil {
				return nil, err
			}
			return workergdpr.New(workergdpr.Deps{
				JS: d.js, Accounts: users, Registry: registry, Requests: reqs, Blobs: d.blobs, Log: log,
				Mail: mailer.Enqueuer(d.js),
			}).Handle, nil
		},
	}, {
		// Deletes GDPR exports when their link expires (a week after).
		name: "gdpr-exports",
		consumer: consume.Config{
			Role: "gdpr-exports", Stream: subjects.GDPRExportsStream, Consumer: subjects.GDPRExportsConsumer,
			Batch: 16, Concurrency: 2, BackoffMin: time.Second, BackoffMax: 5 * time.Minute,
		},
		build: func(ctx context.Context, d roleDeps) (consume.Handler, error) {
			return workergdpr.New(workergdpr.Deps{Blobs: d.blobs, Log: d.log.With("role", "gdpr-exports")}).HandleExpiry, nil
		},
	}, {
		name: "event-holds",
		consumer: consume.Config{
			Role: "event-holds", Stream: subjects.EventHoldsStream, Consumer: subjects.EventHoldsConsumer,
			Batch: 32, Concurrency: 4, BackoffMin: time.Second, BackoffMax: time.Minute,
		},
		build: func(ctx context.Context, d roleDeps) (consume.Handler, error) {
			log := d.log.With("role", "event-holds")
			svc, err := events.Open(ctx, d.js, events.Config{
				BaseURL: d.cfg.BaseURL, Log: log,
				Mail: mailer.Enqueuer(d.js),
			})
			if err != nil {
				return nil, err
			}
			return eventholds.Handler(svc), nil
		},
	}}
}
