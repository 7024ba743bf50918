package main

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	mailer "jetfleet/internal/mail"
	"jetfleet/internal/youtube"
	"jetfleet/workers/abtests"
	"jetfleet/workers/consume"
	"jetfleet/workers/counter"
	"jetfleet/workers/enricher"
	"jetfleet/workers/eventholds"
	"jetfleet/workers/eventsexport"
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
		gdpr.Roles(cfg.BaseURL),
		eventholds.Roles(cfg.BaseURL),
		eventsexport.Roles(exportsConfig(cfg)),
		media.Roles(),
	)
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
