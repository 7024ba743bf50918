package web

import (
	"context"
	"net/http"

	"jetfleet/internal/events"
	webchat "jetfleet/web/chat"
	"jetfleet/web/eventsdesk"
)

// mountEventsDesk serves the live event's teams, help desk, submissions
// and admin page (web/eventsdesk) on the Events service svc.
func mountEventsDesk(ctx context.Context, s *Server, mux *http.ServeMux, svc *events.Service) error {
	h, err := eventsdesk.New(ctx, eventsdesk.Deps{
		Events: svc, JS: s.deps.JS, Log: s.deps.Log.With("product", "events", "part", "desk"),
		MaxFile: events.DefaultMaxSubmissionFile,
		// A team's view embeds its team room's chat (the room is the
		// team's id; CanJoinRoom admits its members and the admins).
		ChatPanel: webchat.ChatPanel,
		// Figures: the live analytics figures (web/eventsanalytics Live), once
		// they are merged; the admin socket refreshes them every 10 s.
	})
	if err != nil {
		return err
	}
	h.Routes(mux, s.signedIn)
	return nil
}
