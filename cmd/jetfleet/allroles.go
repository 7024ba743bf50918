package main

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/eventpost"
	mailer "jetfleet/internal/mail"
	"jetfleet/internal/payments"
	"jetfleet/internal/youtube"
	"jetfleet/workers/abtests"
	"jetfleet/workers/consume"
	"jetfleet/workers/counter"
	"jetfleet/workers/enricher"
	"jetfleet/workers/eventholds"
	"jetfleet/workers/eventsengagement"
	"jetfleet/workers/eventsexport"
	"jetfleet/workers/eventspost"
	"jetfleet/workers/gdpr"
	"jetfleet/workers/mail"
	"jetfleet/workers/media"
	"jetfleet/workers/tracker"
)

// allRoles lists every worker role this binary can run. Each role is
// declared in its own package (workers/<role>, Roles); cmd only passes it
// its settings from cfg.
func allRoles(cfg *config) []consume.Role {
	return slices.Concat(
		consume.Roles(),
		mail.Roles(mailer.SMTPConfig{
			Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword,
			From: cfg.SMTPFrom, TLS: cfg.SMTPTLS,
		}),
		counter.Roles(),
		enricher.Roles(enricher.Config{Hold: cfg.enricherHold()}),
		tracker.Roles(trackerConfig(cfg)),
		abtests.Roles(abtestsConfig(cfg)),
		gdpr.Roles(gdpr.Config{BaseURL: cfg.BaseURL, ABTests: abtestsConfig(cfg).Service}),
		eventholds.Roles(cfg.BaseURL),
		eventsexport.Roles(exportsConfig(cfg)),
		media.Roles(),
		eventsengagement.Roles(eventsengagement.Config{}),
		eventspost.Roles(eventsPostConfig(cfg)),
	)
}

// eventsPostConfig is the post-event roles' configuration: the fee's price
// table and the platform's Stripe (the stand-in's, under jetfleet dev).
func eventsPostConfig(cfg *config) eventspost.Config {
	return eventspost.Config{
		BaseURL: cfg.BaseURL,
		Prices: eventpost.Prices{
			FreeParticipants: cfg.EventsFeeFreeParticipants, PerParticipantMinor: int64(cfg.EventsFeePerParticipant), Currency: cfg.EventsFeeCurrency,
		},
		Payments: func() (*payments.Client, error) {
			if cfg.StripeSecretKey == "" {
				return nil, nil
			}
			return payments.New(payments.Config{SecretKey: cfg.StripeSecretKey, WebhookSecret: cfg.StripeWebhookSecret, APIBase: cfg.StripeAPIBase})
		},
	}
}

// trackerConfig is the tracker roles' configuration.
func trackerConfig(cfg *config) tracker.Config {
	s := cfg.TrackerSlot
	return tracker.Config{
		Slots:            tracker.Slots{Channel: s, Hourly: s, Daily: s, HiRes: s},
		VideoConcurrency: cfg.TrackerConcurrency,
		BaseURL:          cfg.BaseURL,
		YouTube:          func(reg prometheus.Registerer) (*youtube.Client, error) { return newYouTube(cfg, reg) },
	}
}
