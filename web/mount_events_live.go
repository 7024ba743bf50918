package web

import (
	"net/http"

	"github.com/a-h/templ"

	"jetfleet/internal/events"
	webchat "jetfleet/web/chat"
	"jetfleet/web/events/live"
)

// mountEventsLive serves the live event app (/events/{id}/live: lobby,
// stream, the main chat's slot, heartbeats) for the event's members.
func mountEventsLive(s *Server, mux *http.ServeMux, svc *events.Service) error {
	app, err := live.New(live.Deps{
		Events: svc, JS: s.deps.JS, Log: s.deps.Log.With("product", "events", "part", "live"),
		Chat: func(c live.ChatSlot) templ.Component {
			return webchat.ChatPanel(c.Event.ID, c.Room, c.ReadOnly)
		},
	})
	if err != nil {
		return err
	}
	app.Routes(mux, s.signedIn)
	return nil
}
