// Package eventsanalytics is the Events product's pages after (and during)
// an event, for its admins: the analytics page with its charts, the live
// figures panel (LivePanel, which the live admin dashboard embeds), and the
// organiser's platform-fee card (saved through a Stripe SetupIntent). The
// figures come from internal/eventpost: the stored summary once the event
// is accumulated, computed from live data before.
package eventsanalytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/eventpost"
	"jetfleet/internal/events"
	"jetfleet/internal/ids"
	"jetfleet/internal/payments"
	"jetfleet/subjects"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

// Deps are what the pages use.
type Deps struct {
	Events *events.Service
	Store  *eventpost.Store
	// ClickHouse holds the engagement; nil shows registrations only.
	ClickHouse driver.Conn
	// Payments is the platform's Stripe, for the fee card; nil hides it.
	Payments *payments.Client
	JS       jetstream.JetStream
	Prices   eventpost.Prices
	BaseURL  string
	// AccumulateNow offers admins of an event that is over a button that
	// fires its post-event steps at once (development installs and demos,
	// where nobody waits two hours).
	AccumulateNow bool
	Log           *slog.Logger
	Now           func() time.Time
}

// Handler serves the pages.
type Handler struct {
	d     Deps
	pages site.Pages
}

// New returns the handler.
func New(d Deps) *Handler {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	d.BaseURL = strings.TrimRight(d.BaseURL, "/")
	return &Handler{d: d, pages: site.Pages{Log: d.Log}}
}

// Routes registers the pages behind protect, the site's sign-in gate.
func (h *Handler) Routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	mux.Handle("GET /events/organise/{id}/analytics", protect(http.HandlerFunc(h.analytics)))
	mux.Handle("POST /events/organise/{id}/analytics/accumulate", protect(http.HandlerFunc(h.accumulate)))
	mux.Handle("POST /events/organise/{id}/analytics/fee/retry", protect(http.HandlerFunc(h.retryFee)))
	mux.Handle("GET /events/organise/fees", protect(http.HandlerFunc(h.fees)))
	mux.Handle("POST /events/organise/fees/card", protect(http.HandlerFunc(h.saveCard)))
	mux.Handle("GET /events/organise/fees/card/return", protect(http.HandlerFunc(h.cardReturn)))
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.pages.Render(w, r, http.StatusNotFound, "Not found", messagePage("Not found", "There is no such event, or you are not one of its hosts."))
}

// admin returns the event of the path if the signed-in person is one of
// its admins (organiser or invited host); anyone else gets 404.
func (h *Handler) admin(w http.ResponseWriter, r *http.Request) (events.Event, events.Member, bool) {
	u, _ := session.UserFrom(r.Context())
	eid := r.PathValue("id")
	if !ids.Valid(eid) {
		h.notFound(w, r)
		return events.Event{}, events.Member{}, false
	}
	m, e, err := h.d.Events.Member(r.Context(), eid, u.ID, u.Email)
	if errors.Is(err, events.ErrNotFound) || errors.Is(err, events.ErrNotMember) || err == nil && !m.Admin {
		h.notFound(w, r)
		return events.Event{}, events.Member{}, false
	}
	if err != nil {
		h.pages.Fail(w, r, "event admin", err)
		return events.Event{}, events.Member{}, false
	}
	return e, m, true
}

func (h *Handler) analytics(w http.ResponseWriter, r *http.Request) {
	e, m, ok := h.admin(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	now := h.d.Now()
	d := pageData{Event: e, Organiser: m.UserID == e.OrganiserID, Notice: r.URL.Query().Get("ok"), Prices: h.d.Prices}
	sum, err := h.d.Store.Summary(ctx, e.ID)
	switch {
	case err == nil:
	case errors.Is(err, eventpost.ErrNotFound):
		// Not accumulated yet: the same figures from live data.
		if sum, err = eventpost.Compute(ctx, h.d.Events, h.d.ClickHouse, e, now); err != nil {
			h.pages.Fail(w, r, "event figures", err)
			return
		}
	default:
		h.pages.Fail(w, r, "event summary", err)
		return
	}
	d.Summary = sum
	if f, _, err := h.d.Store.Fee(ctx, e.ID); err == nil {
		d.Fee = &f
	} else if !errors.Is(err, eventpost.ErrNotFound) {
		h.pages.Fail(w, r, "fee record", err)
		return
	}
	if s, err := h.d.Events.PostSchedule(ctx, e.ID); err == nil {
		d.ScheduledAt = s.At
	}
	d.Over = e.Past(now)
	d.CanAccumulate = h.d.AccumulateNow && d.Over && !sum.Final && e.Status == events.Live
	if !d.Over && h.d.ClickHouse != nil && !now.Before(e.Start.Add(-time.Hour)) {
		if d.Live, err = LivePanelFor(ctx, h.d.ClickHouse, h.d.Events, e, now); err != nil {
			h.pages.Fail(w, r, "live figures", err)
			return
		}
		d.ShowLive = true
	}
	if d.Organiser {
		if d.Card, err = h.d.Events.Organiser(ctx, e.OrganiserID); err != nil {
			h.pages.Fail(w, r, "organiser", err)
			return
		}
		d.CardAvailable = h.d.Payments != nil
	}
	h.pages.Render(w, r, http.StatusOK, "Analytics · "+e.Title, analyticsPage(d))
}

// accumulate fires the event's post-event steps now (AccumulateNow).
func (h *Handler) accumulate(w http.ResponseWriter, r *http.Request) {
	e, _, ok := h.admin(w, r)
	if !ok {
		return
	}
	if !h.d.AccumulateNow {
		h.notFound(w, r)
		return
	}
	if !e.Past(h.d.Now()) || e.Status != events.Live {
		h.pages.Render(w, r, http.StatusConflict, "Not over yet", messagePage("Not over yet", "An event's figures are accumulated once it has ended."))
		return
	}
	b, _ := json.Marshal(subjects.EventsPostFiring{EventID: e.ID, End: e.End, At: h.d.Now().UTC()})
	if _, err := h.d.JS.Publish(r.Context(), subjects.EventsPostFire(e.ID), b, jetstream.WithMsgID("fire-now:"+e.ID)); err != nil {
		h.pages.Fail(w, r, "fire post-event steps", err)
		return
	}
	http.Redirect(w, r, "/events/organise/"+e.ID+"/analytics?ok=accumulating", http.StatusSeeOther)
}

// retryFee charges a flagged fee again, once the organiser saved a card
// that can pay it.
func (h *Handler) retryFee(w http.ResponseWriter, r *http.Request) {
	e, m, ok := h.admin(w, r)
	if !ok {
		return
	}
	if m.UserID != e.OrganiserID {
		h.notFound(w, r)
		return
	}
	f, err := h.d.Store.ReopenFee(r.Context(), e.ID, h.d.Now())
	if errors.Is(err, eventpost.ErrNotFlagged) || errors.Is(err, eventpost.ErrNotFound) {
		http.Redirect(w, r, "/events/organise/"+e.ID+"/analytics", http.StatusSeeOther)
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "reopen fee", err)
		return
	}
	b, _ := json.Marshal(subjects.EventsPostFiring{EventID: e.ID, End: e.End, At: h.d.Now().UTC()})
	if _, err := h.d.JS.Publish(r.Context(), subjects.EventsPostAccumulated(e.ID), b, jetstream.WithMsgID(fmt.Sprintf("fee-retry:%s:%d", e.ID, f.Attempt))); err != nil {
		h.pages.Fail(w, r, "queue fee charge", err)
		return
	}
	http.Redirect(w, r, "/events/organise/"+e.ID+"/analytics?ok=fee-retry", http.StatusSeeOther)
}

// LivePanelFor computes the live figures of event e at now, with the
// participants' names (their registrations') for the top contributors.
func LivePanelFor(ctx context.Context, ch driver.Conn, svc *events.Service, e events.Event, now time.Time) (LivePanel, error) {
	f, err := analytics.EventLiveFigures(ctx, ch, e.ID, now, 5)
	if err != nil {
		return LivePanel{}, err
	}
	p := LivePanel{ConnectedNow: f.ConnectedNow, Loc: e.Location()}
	var last uint64
	for _, m := range f.MessagesPerMinute {
		p.PerMinute = append(p.PerMinute, pointOf(m))
		last = m.Count
	}
	p.LastMinute = last
	// One read of the event's registrations names every contributor.
	var rids []string
	for _, c := range f.Top {
		if ids.Valid(c.AuthorID) {
			rids = append(rids, c.AuthorID)
		}
	}
	names, err := svc.Names(ctx, e.ID, rids)
	if err != nil {
		return LivePanel{}, fmt.Errorf("names of top contributors: %w", err)
	}
	for _, c := range f.Top {
		p.Top = append(p.Top, Contributor{Name: contributorName(names, c), Messages: c.Messages})
	}
	return p, nil
}

// contributorName is c's name in their registration. A deleted
// participant's registration holds a pseudonym (events.Names gives one
// too when it is gone); rows without an author id, or a registration
// without a name, show a pseudonym made of an id, never an address.
func contributorName(names map[string]string, c analytics.Contributor) string {
	if n := strings.TrimSpace(names[c.AuthorID]); n != "" {
		return n
	}
	id := c.AuthorID
	if !ids.Valid(id) {
		id = c.UserID
	}
	return "Participant " + short(id)
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
