package eventsexport

import (
	"context"
	"time"

	"jetfleet/internal/crm"
	"jetfleet/internal/crm/hubspot"
	"jetfleet/internal/crm/salesforce"
	"jetfleet/internal/events"
	mailer "jetfleet/internal/mail"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Config is the role's settings.
type Config struct {
	BaseURL    string // the site's, for links in mail
	HubSpot    hubspot.Config
	Salesforce salesforce.Config
}

// Roles is the events-export role.
func Roles(cfg Config) []consume.Role {
	return []consume.Role{{
		Name: "events-export",
		Consumer: consume.Config{
			// Few exports at a time: each is a long conversation with a
			// CRM that rate-limits per account.
			Role: "events-export", Stream: subjects.EventsExportsStream, Consumer: subjects.EventsExportsConsumer,
			Batch: 4, Concurrency: 4, BackoffMin: 5 * time.Second, BackoffMax: 10 * time.Minute,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			log := d.Log.With("role", "events-export")
			svc, err := events.Open(ctx, d.JS, events.Config{BaseURL: cfg.BaseURL, Log: log})
			if err != nil {
				return nil, err
			}
			runs, err := crm.OpenRuns(ctx, d.JS)
			if err != nil {
				return nil, err
			}
			creds, err := crm.OpenCredentials(ctx, d.JS, d.Tokens)
			if err != nil {
				return nil, err
			}
			return New(Deps{
				JS: d.JS, Events: svc, Runs: runs, Creds: creds,
				HubSpot: hubspot.New(cfg.HubSpot), Salesforce: salesforce.New(cfg.Salesforce),
				Blobs: d.Blobs, Mail: mailer.Enqueuer(d.JS), Log: log, MaxDeliver: subjects.EventsExportsMaxDeliver,
			}).Handle, nil
		},
	}}
}
