package web

import (
	"context"
	"errors"
	"net/http"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/apikeys"
	"jetfleet/web/enricher"
)

// mountEnricher serves the Enricher's NDJSON ingest under
// /api/enricher/v1 (API keys, no session) and its page at /enricher (signed
// in: a user sees the lessons of their own keys, an operator everything).
// The rate sampler lives as long as ctx.
func mountEnricher(ctx context.Context, s *Server, mux *http.ServeMux) error {
	keys, err := apikeys.OpenEnricher(ctx, s.deps.JS)
	if err != nil {
		return err
	}
	log := s.deps.Log.With("product", "enricher")
	enricher.NewIngest(s.deps.JS, keys, log).Routes(s.api)
	rates := enricher.NewRates(s.deps.JS, 2*time.Second)
	go rates.Run(ctx)
	users, err := accounts.Open(ctx, s.deps.JS, accounts.Config{})
	if err != nil {
		return err
	}
	enricher.NewPage(enricher.PageDeps{
		ClickHouse: s.deps.ClickHouse, Rates: rates, Keys: keys, Log: log,
		Operator: func(ctx context.Context, uid string) (bool, error) {
			u, err := users.User(ctx, uid)
			if errors.Is(err, accounts.ErrNotFound) {
				return false, nil
			}
			return u.Operator, err
		},
	}).Routes(mux, s.signedIn)
	return nil
}
