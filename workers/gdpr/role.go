package gdpr

import (
	"context"
	"time"

	"jetfleet/internal/abtest"
	"jetfleet/internal/accounts"
	"jetfleet/internal/events"
	"jetfleet/internal/gdpr"
	mailer "jetfleet/internal/mail"
	"jetfleet/internal/personaldata"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Config is the GDPR roles' configuration.
type Config struct {
	// BaseURL is the site's, for the links in the mail they send.
	BaseURL string
	// ABTests builds the Tracker's A/B test domain with Google OAuth, so a
	// deletion revokes the person's grant at Google; nil forgets the
	// tokens without revoking them (and records that on the request).
	ABTests func(ctx context.Context, d consume.Deps) (*abtest.Service, error)
}

// Roles are the GDPR roles: requests (for every product, through the
// personal-data registry) and the expiry of their exports.
func Roles(cfg Config) []consume.Role {
	baseURL := cfg.BaseURL
	return []consume.Role{{
		Name: "gdpr",
		Consumer: consume.Config{
			// A few requests at a time: 500 participants asking at once
			// are worked through in turn.
			Role: "gdpr", Stream: subjects.GDPRStream, Consumer: subjects.GDPRConsumer,
			Batch: 4, Concurrency: 2, BackoffMin: 2 * time.Second, BackoffMax: 10 * time.Minute,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			log := d.Log.With("role", "gdpr")
			users, err := accounts.Open(ctx, d.JS, accounts.Config{})
			if err != nil {
				return nil, err
			}
			svc, err := events.Open(ctx, d.JS, events.Config{BaseURL: baseURL, Log: log})
			if err != nil {
				return nil, err
			}
			reqs, err := gdpr.Open(ctx, d.JS, nil)
			if err != nil {
				return nil, err
			}
			var abtests *abtest.Service
			if cfg.ABTests != nil {
				if abtests, err = cfg.ABTests(ctx, d); err != nil {
					return nil, err
				}
			}
			registry, err := personaldata.Registry(ctx, personaldata.Deps{JS: d.JS, Events: svc, Blobs: d.Blobs, ClickHouse: d.ClickHouse, ABTests: abtests})
			if err != nil {
				return nil, err
			}
			return New(Deps{
				JS: d.JS, Accounts: users, Registry: registry, Requests: reqs, Blobs: d.Blobs, Log: log,
				Mail: mailer.Enqueuer(d.JS),
			}).Handle, nil
		},
	}, {
		// Deletes GDPR exports when their link expires (a week after).
		Name: "gdpr-exports",
		Consumer: consume.Config{
			Role: "gdpr-exports", Stream: subjects.GDPRExportsStream, Consumer: subjects.GDPRExportsConsumer,
			Batch: 16, Concurrency: 2, BackoffMin: time.Second, BackoffMax: 5 * time.Minute,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			return New(Deps{Blobs: d.Blobs, Log: d.Log.With("role", "gdpr-exports")}).HandleExpiry, nil
		},
	}}
}
