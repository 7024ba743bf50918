package web

import (
	"context"
	"net/http"
	"time"

	"github.com/a-h/templ"

	"jetfleet/internal/enricherkeys"
	"jetfleet/web/enricher"
)

// mountEnricher serves the Enricher's NDJSON ingest under
// /api/enricher/v1 (API keys, no session) and its page at /enricher (signed
// in). The rate sampler lives as long as ctx.
func mountEnricher(ctx context.Context, s *Server, mux *http.ServeMux) error {
	keys, err := enricherkeys.Open(ctx, s.deps.JS)
	if err != nil {
		return err
	}
	log := s.deps.Log.With("product", "enricher")
	enricher.NewIngest(s.deps.JS, keys, log).Routes(s.api)
	rates := enricher.NewRates(s.deps.JS, 2*time.Second)
	go rates.Run(ctx)
	enricher.NewPage(s.deps.ClickHouse, rates, log, func(body templ.Component) templ.Component {
		return productPage("Enricher", body)
	}).Routes(mux, s.signedIn)
	return nil
}
