package web

import (
	"net/http"

	"jetfleet/internal/events"
	"jetfleet/web/events/live"
)

// mountEventsLive serves the live event app (/events/{id}/live: lobby,
// stream, the main chat's slot, heartbeats) for the event's members.
func mountEventsLive(s *Server, mux *http.ServeMux, svc *events.Service) error {
	app, err := live.New(live.Deps{
		Events: svc, JS: s.deps.JS, Log: s.deps.Log.With("product", "events", "part", "live"),
		// Chat: the main room's panel (web/chat's ChatPanel) once the chat is wired.
	})
	if err != nil {
		return err
	}
	app.Routes(mux, s.signedIn)
	return nil
}
