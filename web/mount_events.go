package web

import (
	"context"
	"io"
	"net/http"

	"github.com/a-h/templ"

	"jetfleet/internal/accounts"
	"jetfleet/internal/events"
	"jetfleet/internal/mail"
	"jetfleet/subjects"
	webevents "jetfleet/web/events"
)

// mountEvents serves the Events product under /events (browsing is public;
// registrations, "my events" and organising need a signed-in user) and
// Stripe's webhook at /api/events/stripe/webhook.
func mountEvents(ctx context.Context, s *Server, mux *http.ServeMux) error {
	log := s.deps.Log.With("product", "events")
	svc, err := events.Open(ctx, s.deps.JS, events.Config{
		BaseURL: s.cfg.BaseURL, Log: log,
		Mail: func(ctx context.Context, m subjects.Mail) error { return mail.Enqueue(ctx, s.deps.JS, m) },
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
	webevents.New(webevents.Deps{
		Events: svc, Catalog: catalog, Accounts: users, Payments: s.deps.Payments, JS: s.deps.JS,
		BaseURL: s.cfg.BaseURL, Outbox: s.cfg.Outbox, Log: log,
		Layout: func(title string, body templ.Component) templ.Component {
			return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
				return Page(title).Render(templ.WithChildren(ctx, body), w)
			})
		},
	}).Routes(mux, s.api)
	return nil
}
