package web

import (
	"context"
	"log/slog"
	"net/http"

	"jetfleet/internal/accounts"
	"jetfleet/internal/crm"
	"jetfleet/internal/events"
	"jetfleet/internal/gdpr"
	"jetfleet/internal/mail"
	"jetfleet/web/eventexports"
	webevents "jetfleet/web/events"
	webgdpr "jetfleet/web/gdpr"
	"jetfleet/web/tracker"
)

// mountEvents serves the Events product under /events (browsing is public;
// registrations, "my events" and organising need a signed-in user) and
// Stripe's webhook at /api/events/stripe/webhook, and people's GDPR
// requests under /account/data.
func mountEvents(ctx context.Context, s *Server, mux *http.ServeMux) error {
	log := s.deps.Log.With("product", "events")
	svc, err := events.Open(ctx, s.deps.JS, events.Config{
		BaseURL: s.cfg.BaseURL, Log: log,
		Mail: mail.Enqueuer(s.deps.JS), PostDelay: s.cfg.EventsPostDelay, Blobs: s.deps.BlobStore,
	})
	if err != nil {
		return err
	}
	// The browse view follows the catalog for as long as the edge runs.
	catalog, err := events.WatchCatalog(ctx, s.deps.JS, log)
	if err != nil {
		return err
	}
	users, err := accounts.Open(ctx, s.deps.JS, accounts.Config{})
	if err != nil {
		return err
	}
	// The site has one Stripe webhook (one endpoint URL, one secret): the
	// Tracker's premium subscriptions arrive through it too.
	plans := tracker.Plans{Accounts: users, Payments: s.deps.Payments, Log: s.deps.Log.With("product", "tracker")}
	h, err := webevents.New(webevents.Deps{
		Events: svc, Catalog: catalog, Accounts: users, Payments: s.deps.Payments, JS: s.deps.JS,
		Subscriptions: plans.Apply,
		BaseURL:       s.cfg.BaseURL, Outbox: s.cfg.Outbox, Log: log,
	})
	if err != nil {
		return err
	}
	h.Routes(mux, s.api, s.signedIn, s.identify)
	if err := mountEventsAnalytics(ctx, s, mux, svc); err != nil {
		return err
	}
	if err := mountEventsChat(ctx, s, mux, svc); err != nil {
		return err
	}
	if err := mountEventsDesk(ctx, s, mux, svc); err != nil {
		return err
	}
	// GDPR requests (seed 001) belong to the Events product: its
	// participants and organisers are the people whose data it keeps.
	reqs, err := gdpr.Open(ctx, s.deps.JS, nil)
	if err != nil {
		return err
	}
	gdprPages, err := webgdpr.New(webgdpr.Deps{
		Requests: reqs, Accounts: users, JS: s.deps.JS, BaseURL: s.cfg.BaseURL, Outbox: s.cfg.Outbox,
		Log: log.With("part", "gdpr"),
	})
	if err != nil {
		return err
	}
	gdprPages.Routes(mux, s.signedIn)
	if err := mountEventsLive(s, mux, svc); err != nil {
		return err
	}
	return mountEventExports(ctx, s, mux, svc, log)
}

// mountEventExports serves an event's exports (CSV, HubSpot, Salesforce)
// and the organisers' integration settings.
func mountEventExports(ctx context.Context, s *Server, mux *http.ServeMux, svc *events.Service, log *slog.Logger) error {
	runs, err := crm.OpenRuns(ctx, s.deps.JS)
	if err != nil {
		return err
	}
	var creds *crm.Credentials
	if s.deps.Tokens != nil {
		if creds, err = crm.OpenCredentials(ctx, s.deps.JS, s.deps.Tokens); err != nil {
			return err
		}
	}
	exports, err := eventexports.New(eventexports.Deps{
		Events: svc, Runs: runs, Creds: creds, Salesforce: s.deps.Salesforce, HubSpot: s.deps.HubSpot, JS: s.deps.JS, Log: log.With("part", "exports"),
	})
	if err != nil {
		return err
	}
	exports.Routes(mux, s.signedIn)
	return nil
}
