package web

import (
	"context"
	"net/http"
	"time"

	"github.com/a-h/templ"

	"jetfleet/analytics"
	"jetfleet/internal/events"
	webchat "jetfleet/web/chat"
	"jetfleet/web/eventsanalytics"
	"jetfleet/web/eventsdesk"
)

// mountEventsDesk serves the live event's teams, help desk, submissions
// and admin page (web/eventsdesk) on the Events service svc.
func mountEventsDesk(ctx context.Context, s *Server, mux *http.ServeMux, svc *events.Service) error {
	log := s.deps.Log.With("product", "events", "part", "desk")
	d := eventsdesk.Deps{
		Events: svc, JS: s.deps.JS, Log: log,
		MaxFile: events.DefaultMaxSubmissionFile, MemberRecheck: s.cfg.EventsMemberRecheck,
		FiguresEvery: s.cfg.EventsDashboardEvery,
		// A team's view embeds its team room's chat (the room is the
		// team's id; CanJoinRoom admits its members and the admins).
		ChatPanel: webchat.ChatPanel,
		// The live analytics figures (connected now, messages per minute,
		// top contributors); the admin socket sends them again every 10 s.
		Figures: func(ctx context.Context, e events.Event) templ.Component {
			if s.deps.ClickHouse == nil {
				return nil
			}
			p, err := eventsanalytics.LivePanelFor(ctx, s.deps.ClickHouse, svc, e, time.Now())
			if err != nil {
				log.Warn("live figures", "event", e.ID, "err", err)
				return nil
			}
			return eventsanalytics.Live(p)
		},
	}
	if s.deps.ClickHouse != nil {
		// The teams table's activity: who is connected, each team room's
		// recent messages.
		d.Activity = func(ctx context.Context, e events.Event) (eventsdesk.Activity, error) {
			a, err := analytics.EventTeamActivity(ctx, s.deps.ClickHouse, e.ID, time.Now(), eventsdesk.ActivityWindow)
			if err != nil {
				return eventsdesk.Activity{}, err
			}
			out := eventsdesk.Activity{Connected: map[string]bool{}, Messages: a.Messages}
			for _, rid := range a.Connected {
				out.Connected[rid] = true
			}
			return out, nil
		}
	}
	h, err := eventsdesk.New(ctx, d)
	if err != nil {
		return err
	}
	h.Routes(mux, s.signedIn)
	s.submitGate = h.MaySubmit
	return nil
}
