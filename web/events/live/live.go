// Package live is the live event app of the Events product, one page per
// event at /events/{id}/live: a lobby with a countdown before the start,
// the stream (hls.js, native HLS as fallback) with the main chat while it
// runs, the read-only history after the end. Only the event's members
// (confirmed participants, the organiser and the hosts they invited — see
// events.Service.Member) get in; everyone else gets a page that says why
// and what to do. The page's script posts a heartbeat every minute, which
// this package turns into engagement messages (subjects.EventsEngagement).
// The chat, team and admin views are their own packages; this one links to
// them and leaves the chat panel a slot (Deps.Chat).
package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/a-h/templ"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/events"
	"jetfleet/internal/ids"
	"jetfleet/subjects"
	"jetfleet/web/ratelimit"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

// ChatSlot is what the chat panel of the app is given: who is looking,
// at which event and room, and whether they may still write (not after the
// event's end).
type ChatSlot struct {
	Member   events.Member
	Event    events.Event
	Room     string
	ReadOnly bool
}

// Deps are what the app uses.
type Deps struct {
	Events *events.Service
	JS     jetstream.JetStream // heartbeats are published here
	Log    *slog.Logger
	Now    func() time.Time
	// Chat renders the chat panel of a room; nil shows the slot empty
	// with a note that chat is not available on this site.
	Chat func(ChatSlot) templ.Component
}

// Handler serves the live app.
type Handler struct {
	d     Deps
	pages site.Pages
	// beats bounds heartbeats per member and event, shared by every edge:
	// the page sends one a minute, a few tabs a few.
	beats *ratelimit.Shared
	// members spares each heartbeat the registration lookup.
	members *memberCache
}

// HeartbeatsPerMinute is how many heartbeats a member may post to one
// event in a minute (every open tab sends one a minute and one at load).
const HeartbeatsPerMinute = 10

// New returns the handler.
func New(d Deps) (*Handler, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	beats, err := ratelimit.NewShared(d.JS, "events-live-heartbeat", HeartbeatsPerMinute, time.Minute)
	if err != nil {
		return nil, err
	}
	return &Handler{d: d, pages: site.Pages{Log: d.Log}, beats: beats, members: newMemberCache(d.Now)}, nil
}

// Routes registers the app on mux behind protect, the site's sign-in gate
// (a visitor signs in by magic link and comes back to the app).
//
// The app's path has three segments, like /events/e/{id} and
// /events/organise/{id}; net/http's mux refuses "/events/{id}/live" beside
// those (both would match /events/organise/live), so the app takes
// "/events/{id}/{page}" — less specific than either — and answers 404 for
// any page but "live". The app's sub-views (/events/{id}/live/…) have four
// segments and register as they are.
func (h *Handler) Routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	app := protect(http.HandlerFunc(h.app))
	mux.Handle("GET /events/{id}/{page}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("page") != "live" || !ids.Valid(r.PathValue("id")) {
			h.notFound(w, r)
			return
		}
		app.ServeHTTP(w, r)
	}))
	mux.Handle("POST /events/{id}/live/heartbeat", protect(http.HandlerFunc(h.heartbeat)))
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.pages.Render(w, r, http.StatusNotFound, "Not found", notFoundPage())
}

// member returns who the signed-in user is in the event of the request's
// path; ok false means it has answered (404 or the refusal page).
func (h *Handler) member(w http.ResponseWriter, r *http.Request) (events.Member, events.Event, bool) {
	u, _ := session.UserFrom(r.Context())
	eid := r.PathValue("id")
	m, e, err := h.d.Events.Member(r.Context(), eid, u.ID, u.Email)
	switch {
	case errors.Is(err, events.ErrNotFound):
		h.notFound(w, r)
		return m, e, false
	case errors.Is(err, events.ErrNotMember):
		h.pages.Render(w, r, http.StatusForbidden, "Not your event", refusalPage(e, u.Email, h.d.Now()))
		return m, e, false
	case err != nil:
		h.pages.Fail(w, r, "live app member", err)
		return m, e, false
	}
	return m, e, true
}

func (h *Handler) app(w http.ResponseWriter, r *http.Request) {
	m, e, ok := h.member(w, r)
	if !ok {
		return
	}
	now := h.d.Now()
	d := appData{Member: m, Event: e, Now: now, Phase: e.PhaseAt(now)}
	if d.Phase != events.PhaseLobby && h.d.Chat != nil {
		d.Chat = h.d.Chat(ChatSlot{Member: m, Event: e, Room: events.MainRoom, ReadOnly: d.Phase == events.PhaseEnded})
	}
	if d.Phase == events.PhaseLive && e.StreamURL != "" {
		// The stream may come from any provider: this page alone may load
		// media from its origin.
		site.AllowMediaFrom(w.Header(), site.MediaOrigin(e.StreamURL))
	}
	// The page changes with the clock (lobby → stage → history): never
	// from a cache.
	w.Header().Set("Cache-Control", "no-store")
	h.pages.Render(w, r, http.StatusOK, e.Title+" · live", appPage(d))
}

// heartbeat is the app page telling that it is open: once at load (first=1)
// and every minute after. During the event it publishes one heartbeat
// engagement for the member and minute — the same message id from every
// tab, device and edge, so the minute counts once — and, at a page's first
// one, the member's first connect (counted once per member however often
// it is sent). The occurrence ids name the member (events.Member.EngagementID);
// user_id is their account, by which a GDPR deletion finds the rows.
// It answers 204; 409 outside the event's time; 403 to a
// non-member; 429 past the limit.
func (h *Handler) heartbeat(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, _ := session.UserFrom(ctx)
	m, e, err := h.members.member(ctx, h.d.Events, r.PathValue("id"), u.ID, u.Email)
	switch {
	case errors.Is(err, events.ErrNotFound):
		http.Error(w, "There is no such live event.", http.StatusNotFound)
		return
	case errors.Is(err, events.ErrNotMember):
		http.Error(w, "This live event is for its confirmed participants and hosts.", http.StatusForbidden)
		return
	case err != nil:
		h.d.Log.Error("heartbeat member", "event", r.PathValue("id"), "user", u.ID, "err", err)
		http.Error(w, "Something went wrong on our side; the next heartbeat will try again.", http.StatusInternalServerError)
		return
	}
	now := h.d.Now().UTC()
	if e.PhaseAt(now) != events.PhaseLive {
		http.Error(w, "The event is not running now: heartbeats count only during it.", http.StatusConflict)
		return
	}
	who := m.EngagementID()
	allowed, err := h.beats.Allow(ctx, e.ID+"/"+who)
	if err != nil {
		h.d.Log.Error("heartbeat rate limit", "event", e.ID, "err", err)
		http.Error(w, "Something went wrong on our side; the next heartbeat will try again.", http.StatusServiceUnavailable)
		return
	}
	if !allowed {
		w.Header().Set("Retry-After", strconv.Itoa(60-now.Second()))
		http.Error(w, fmt.Sprintf("At most %d heartbeats a minute; this minute is counted already.", HeartbeatsPerMinute), http.StatusTooManyRequests)
		return
	}
	if r.PostFormValue("first") == "1" {
		if err := publish(ctx, h.d.JS, subjects.EventsEngagement{Kind: subjects.EngagementConnected, EventID: e.ID, ID: who, UserID: m.UserID, At: now}); err != nil {
			h.d.Log.Error("publish first connect", "event", e.ID, "err", err)
			http.Error(w, "Something went wrong on our side; the next heartbeat will try again.", http.StatusServiceUnavailable)
			return
		}
	}
	if err := publish(ctx, h.d.JS, subjects.EventsEngagement{Kind: subjects.EngagementHeartbeat, EventID: e.ID, ID: subjects.HeartbeatID(who, now), UserID: m.UserID, At: now}); err != nil {
		h.d.Log.Error("publish heartbeat", "event", e.ID, "err", err)
		http.Error(w, "Something went wrong on our side; the next heartbeat will try again.", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// publish puts one engagement on its stream under its message id, so a
// repeat within the stream's duplicate window is dropped by the server.
func publish(ctx context.Context, js jetstream.JetStream, ev subjects.EventsEngagement) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := js.Publish(ctx, subjects.EventsEngagementSubject(ev.EventID, ev.Kind), data, jetstream.WithMsgID(subjects.EventsEngagementMsgID(ev))); err != nil {
		return fmt.Errorf("publish %s engagement of %s: %w", ev.Kind, ev.EventID, err)
	}
	return nil
}
