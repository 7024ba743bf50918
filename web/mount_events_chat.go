package web

import (
	"context"
	"net/http"
	"time"

	"jetfleet/internal/chat"
	"jetfleet/internal/events"
	webchat "jetfleet/web/chat"
	"jetfleet/web/chathub"
	"jetfleet/web/ratelimit"
)

// mountEventsChat serves the live event chat socket
// (/events/{id}/live/chat); this edge's hub follows only the rooms it has
// sockets for, for as long as the edge runs.
func mountEventsChat(ctx context.Context, s *Server, mux *http.ServeMux, svc *events.Service) error {
	store, err := chat.Open(ctx, s.deps.JS)
	if err != nil {
		return err
	}
	posts, err := ratelimit.NewShared(s.deps.JS, "chat-post", webchat.PostsPerMinute, time.Minute)
	if err != nil {
		return err
	}
	log := s.deps.Log.With("product", "events", "part", "chat")
	h, err := webchat.New(webchat.Deps{
		Events: svc, Store: store, Posts: posts, Log: log,
		Hub: chathub.New(ctx, s.deps.JS, store, webchat.Render, chathub.Config{}, log),
	})
	if err != nil {
		return err
	}
	h.Routes(mux, s.signedIn)
	return nil
}
