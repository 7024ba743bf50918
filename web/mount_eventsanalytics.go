package web

import (
	"context"
	"net/http"

	"jetfleet/internal/eventpost"
	"jetfleet/internal/events"
	"jetfleet/web/eventsanalytics"
)

// mountEventsAnalytics serves the Events analytics page, the live figures
// and the organiser's platform-fee card under /events/organise.
func mountEventsAnalytics(ctx context.Context, s *Server, mux *http.ServeMux, svc *events.Service) error {
	store, err := eventpost.Open(ctx, s.deps.JS)
	if err != nil {
		return err
	}
	eventsanalytics.New(eventsanalytics.Deps{
		Events: svc, Store: store, ClickHouse: s.deps.ClickHouse, Payments: s.deps.Payments, JS: s.deps.JS,
		Prices: s.cfg.EventsFees, BaseURL: s.cfg.BaseURL, AccumulateNow: s.cfg.Outbox,
		Log: s.deps.Log.With("product", "events", "part", "analytics"),
	}).Routes(mux, s.signedIn)
	return nil
}
