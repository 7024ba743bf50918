package eventspost

import (
	"context"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/crm"
	"jetfleet/internal/eventpost"
	"jetfleet/internal/events"
	mailer "jetfleet/internal/mail"
	"jetfleet/internal/payments"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Config is the post-event roles' configuration.
type Config struct {
	BaseURL string
	Prices  eventpost.Prices
	// Payments opens the platform's Stripe client; it returns nil when
	// none is configured (every fee due is then flagged).
	Payments func() (*payments.Client, error)
	// Now is the clock; default time.Now.
	Now func() time.Time
	// RetryMin and RetryMax bound the backoff between fee attempts;
	// defaults 1 minute and 1 hour.
	RetryMin, RetryMax time.Duration
}

// Roles are events-post and events-fee.
func Roles(cfg Config) []consume.Role {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Minute
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(time.Hour, cfg.RetryMin)
	}
	return []consume.Role{{
		Name: "events-post",
		Consumer: consume.Config{
			Role: "events-post", Stream: subjects.EventsPostStream, Consumer: subjects.EventsPostConsumer,
			Batch: 4, Concurrency: 2, BackoffMin: 5 * time.Second, BackoffMax: 10 * time.Minute,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			ch, err := d.RequireClickHouse("events-post")
			if err != nil {
				return nil, err
			}
			svc, err := events.Open(ctx, d.JS, events.Config{BaseURL: cfg.BaseURL, Log: d.Log.With("role", "events-post")})
			if err != nil {
				return nil, err
			}
			store, err := eventpost.Open(ctx, d.JS)
			if err != nil {
				return nil, err
			}
			runs, err := crm.OpenRuns(ctx, d.JS)
			if err != nil {
				return nil, err
			}
			p := &Post{JS: d.JS, Events: svc, Store: store, ClickHouse: ch, Now: cfg.Now, Log: d.Log.With("role", "events-post"),
				Exports: func(ctx context.Context, eid string) error { return crm.RequestPostEvent(ctx, d.JS, runs, eid) }}
			return p.Handle, nil
		},
	}, {
		Name: "events-fee",
		Consumer: consume.Config{
			Role: "events-fee", Stream: subjects.EventsPostStream, Consumer: subjects.EventsFeeConsumer,
			Batch: 4, Concurrency: 2, BackoffMin: cfg.RetryMin, BackoffMax: cfg.RetryMax,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			f, err := NewFee(ctx, d, cfg)
			if err != nil {
				return nil, err
			}
			return f.Handle, nil
		},
	}}
}

// NewFee builds the events-fee handler.
func NewFee(ctx context.Context, d consume.Deps, cfg Config) (*Fee, error) {
	svc, err := events.Open(ctx, d.JS, events.Config{BaseURL: cfg.BaseURL, Log: d.Log.With("role", "events-fee")})
	if err != nil {
		return nil, err
	}
	store, err := eventpost.Open(ctx, d.JS)
	if err != nil {
		return nil, err
	}
	users, err := accounts.Open(ctx, d.JS, accounts.Config{})
	if err != nil {
		return nil, err
	}
	var pay *payments.Client
	if cfg.Payments != nil {
		if pay, err = cfg.Payments(); err != nil {
			return nil, err
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Fee{
		Events: svc, Store: store, Accounts: users, Payments: pay, Prices: cfg.Prices,
		Mail: mailer.Enqueuer(d.JS), BaseURL: cfg.BaseURL, Now: cfg.Now,
		Log: d.Log.With("role", "events-fee"), Metrics: NewFeeMetrics(d.Registerer),
	}, nil
}
