package abtests

import (
	"context"
	"time"

	"jetfleet/internal/abtest"
	"jetfleet/internal/accounts"
	mailer "jetfleet/internal/mail"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Config configures the roles.
type Config struct {
	// Service builds the A/B test domain from a process's connections;
	// cmd builds it from the same settings as the edge's.
	Service func(ctx context.Context, d consume.Deps) (*abtest.Service, error)
	// BaseURL is the site's public URL, for the link in the result mail.
	BaseURL string
}

// Roles are the A/B test roles.
func Roles(cfg Config) []consume.Role {
	return []consume.Role{{
		Name: "tracker-abtest-apply",
		Consumer: consume.Config{
			Role: "tracker-abtest-apply", Stream: subjects.TrackerABTestsStream, Consumer: subjects.TrackerABApplyConsumer,
			Batch: 16, Concurrency: 16, BackoffMin: 5 * time.Second, BackoffMax: 10 * time.Minute,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			svc, err := cfg.Service(ctx, d)
			if err != nil {
				return nil, err
			}
			return NewApply(svc, d.Log.With("role", "tracker-abtest-apply")).Handle, nil
		},
	}, {
		Name: "tracker-abtest-wrapup",
		Consumer: consume.Config{
			Role: "tracker-abtest-wrapup", Stream: subjects.TrackerABTestsStream, Consumer: subjects.TrackerABWrapUpConsumer,
			Batch: 4, Concurrency: 4, BackoffMin: 5 * time.Second, BackoffMax: 10 * time.Minute,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			ch, err := d.RequireClickHouse("tracker-abtest-wrapup")
			if err != nil {
				return nil, err
			}
			svc, err := cfg.Service(ctx, d)
			if err != nil {
				return nil, err
			}
			users, err := accounts.Open(ctx, d.JS, accounts.Config{})
			if err != nil {
				return nil, err
			}
			return NewWrapUp(WrapUpDeps{Service: svc, ClickHouse: ch, Users: users, Mail: mailer.Enqueuer(d.JS),
				BaseURL: cfg.BaseURL, Log: d.Log.With("role", "tracker-abtest-wrapup")}).Handle, nil
		},
	}}
}
