package web

import (
	"context"
	"net/http"

	"jetfleet/internal/apikeys"
	"jetfleet/web/counter"
)

// mountCounter serves the Counter API under /api/counter/v1 (API keys, no
// session) and its page at /counter.
func mountCounter(ctx context.Context, s *Server, mux *http.ServeMux) error {
	keys, err := apikeys.OpenCounter(ctx, s.deps.JS)
	if err != nil {
		return err
	}
	fresh, err := counter.WatchFreshness(ctx, s.deps.JS)
	if err != nil {
		return err
	}
	log := s.deps.Log.With("product", "counter")
	ingest := counter.NewIngest(ctx, s.deps.JS, counter.IngestConfig{}, log)
	api, err := counter.NewAPI(s.deps.JS, ingest, keys, s.deps.ClickHouse, fresh, s.cfg.CounterRetention, log)
	if err != nil {
		return err
	}
	api.BodyTimeout = s.cfg.CounterBodyTimeout
	api.Routes(s.api)
	page, err := counter.NewPage(s.deps.JS, keys, s.deps.ClickHouse, fresh, log)
	if err != nil {
		return err
	}
	page.Routes(mux, s.signedIn)
	return nil
}
