// Package eventsdesk serves the live event app's team and help-desk pages:
// the admin page /events/{id}/live/admin (split and publish breakout
// teams, the help queue kept live over the admin's own WebSocket, every
// team's view and submission), the team page /events/{id}/live/team (its
// members, chat, "ask for help" and the team's submission), and the public
// "lost your link?" page. Rules live in internal/events; this package
// parses forms, checks who may see what, and renders.
package eventsdesk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/events"
	"jetfleet/internal/ids"
	"jetfleet/web/ratelimit"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

// Deps are what the pages use.
type Deps struct {
	Events *events.Service
	JS     jetstream.JetStream // shared rate limits
	Log    *slog.Logger
	// MaxFile is the largest submission file (the events service's
	// limit); the upload route's body limit follows it.
	MaxFile int64
	// ChatPanel renders a chat room (web chat's ChatPanel); nil leaves
	// the team page's chat slot with a placeholder.
	ChatPanel func(eventID, room string, readOnly bool) templ.Component
	// Figures renders the live analytics figures of an event on the admin
	// page, and again every FiguresEvery over the admin socket; nil shows
	// none, and so does a nil component.
	Figures func(ctx context.Context, e events.Event) templ.Component
	// Activity tells who of the event's participants is connected and how
	// many messages each team room had in the last ActivityWindow, for the
	// admin page's teams table (sent again every FiguresEvery); nil shows
	// none.
	Activity func(ctx context.Context, e events.Event) (Activity, error)
	// FiguresEvery is how often the admin socket sends fresh figures and
	// the teams table; default 10 s.
	FiguresEvery time.Duration
	// MemberRecheck is how often an open admin or team socket confirms
	// that its viewer is still a host or in the team (events.Recheck);
	// default events.MemberRecheck (a minute).
	MemberRecheck time.Duration
	Now           func() time.Time
}

// Handler serves the pages.
type Handler struct {
	d     Deps
	pages site.Pages
	hub   *hub
	// "Lost your link?" limits, shared by every edge: per client address
	// and per inbox the link would go to.
	lostByClient *ratelimit.Shared
	lostByInbox  *ratelimit.Shared
	// Submissions per participant, shared by every edge: each may store a
	// file of up to MaxFile.
	submits *ratelimit.Shared
}

// New returns the handler; ctx bounds the help-flag watches of its
// admin sockets (the edge's lifetime).
func New(ctx context.Context, d Deps) (*Handler, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.MaxFile <= 0 {
		d.MaxFile = events.DefaultMaxSubmissionFile
	}
	if d.FiguresEvery <= 0 {
		d.FiguresEvery = 10 * time.Second
	}
	byClient, err := ratelimit.NewShared(d.JS, "events-lostlink-client", 10, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	byInbox, err := ratelimit.NewShared(d.JS, "events-lostlink-inbox", 3, time.Hour)
	if err != nil {
		return nil, err
	}
	submits, err := ratelimit.NewShared(d.JS, "events-submit", SubmissionsPerHour, time.Hour)
	if err != nil {
		return nil, err
	}
	return &Handler{d: d, pages: site.Pages{Log: d.Log}, hub: newHub(ctx, d.Events, d.Log), lostByClient: byClient, lostByInbox: byInbox, submits: submits}, nil
}

// SubmissionsPerHour is how many times one participant may submit (or
// update) their team's project in an hour.
const SubmissionsPerHour = 30

func adminPath(eid string) string     { return "/events/" + eid + "/live/admin" }
func teamPath(eid, tid string) string { return "/events/" + eid + "/live/teams/" + tid }
func submitPath(eid string) string    { return events.TeamPath(eid) + "/submit" }
func lostLinkPath(eid string) string  { return "/events/" + eid + "/live/lost-link" }

// Routes registers the pages: the lost-link page for everyone, the rest
// behind protect (the site's sign-in gate).
func (h *Handler) Routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	mux.Handle("GET /events/{id}/live/lost-link", h.validIDs(http.HandlerFunc(h.lostLinkForm)))
	mux.Handle("POST /events/{id}/live/lost-link", h.validIDs(http.HandlerFunc(h.lostLink)))
	member := func(admin bool, f func(http.ResponseWriter, *http.Request, events.Member, events.Event)) http.Handler {
		return protect(h.validIDs(h.member(admin, f)))
	}
	mux.Handle("GET /events/{id}/live/team", member(false, h.ownTeam))
	mux.Handle("POST /events/{id}/live/team/help", member(false, h.askHelp))
	mux.Handle("GET /events/{id}/live/team/ws", member(false, h.teamSocket))
	mux.Handle("POST /events/{id}/live/team/submit", member(false, h.submit))
	mux.Handle("GET /events/{id}/live/teams/{tid}", member(false, h.anyTeam))
	mux.Handle("GET /events/{id}/live/teams/{tid}/file", member(false, h.file))
	mux.Handle("GET /events/{id}/live/admin", member(true, h.admin))
	mux.Handle("GET /events/{id}/live/admin/ws", member(true, h.adminSocket))
	mux.Handle("POST /events/{id}/live/admin/teams/split", member(true, h.split))
	mux.Handle("POST /events/{id}/live/admin/teams/publish", member(true, h.publish))
	mux.Handle("POST /events/{id}/live/admin/teams/latecomers", member(true, h.latecomers))
	mux.Handle("POST /events/{id}/live/admin/help/{fid}/{action}", member(true, h.helpAction))
}

// validIDs answers 404 for an id in the path that ids.New could not have
// made: ids become parts of KV keys.
func (h *Handler) validIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, name := range []string{"id", "tid", "fid"} {
			if v := r.PathValue(name); v != "" && !ids.Valid(v) {
				h.message(w, r, http.StatusNotFound, "Not found", "There is no such event or team.")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// member lets through the event's members (admins only, when admin is
// set), refusing everyone else with a page saying why.
func (h *Handler) member(admin bool, next func(http.ResponseWriter, *http.Request, events.Member, events.Event)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := session.UserFrom(r.Context())
		m, e, err := h.d.Events.Member(r.Context(), r.PathValue("id"), u.ID, u.Email)
		switch {
		case errors.Is(err, events.ErrNotFound):
			h.message(w, r, http.StatusNotFound, "Not found", "There is no such event.")
			return
		case errors.Is(err, events.ErrNotMember):
			// Signed in with another address than the one registered: the
			// lost-link page mails the team link to the registered one.
			h.pages.Render(w, r, http.StatusForbidden, "Not your event", messagePage("Not your event", events.ErrNotMember.Error()+".", lostLinkPath(r.PathValue("id")), "Lost your team link? Have it sent to the address you registered"))
			return
		case err != nil:
			h.pages.Fail(w, r, "events desk: member", err)
			return
		case admin && !m.Admin:
			h.message(w, r, http.StatusForbidden, "For the event's hosts", "This page is for the event's organiser and hosts.")
			return
		}
		next(w, r, m, e)
	})
}

func (h *Handler) message(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	back, backText := "/events", "Browse events"
	if id := r.PathValue("id"); id != "" && status != http.StatusNotFound {
		back, backText = "/events/e/"+id, "The event's page"
	}
	h.pages.Render(w, r, status, title, messagePage(title, text, back, backText))
}

// teamData is what the team page shows.
type teamData struct {
	Event  events.Event
	Member events.Member
	Team   events.Team
	// InTeam: the viewer is a member (an admin may be one too, when
	// registered), so the help button and the submission form are theirs.
	InTeam bool
	// Ended: the event is over; help and submissions are closed.
	Ended      bool
	Names      map[string]string
	Help       *events.HelpFlag
	Submission *events.Submission
	Chat       templ.Component
	Form       events.SubmissionInput
	Problems   map[string]string
	Notice     string
	MaxFile    int64
	Now        time.Time
}

func (h *Handler) ownTeam(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	t, err := h.d.Events.TeamOf(r.Context(), e.ID, m.RegistrationID)
	switch {
	case errors.Is(err, events.ErrNoTeam) && m.Admin:
		http.Redirect(w, r, adminPath(e.ID), http.StatusSeeOther)
		return
	case errors.Is(err, events.ErrNoTeam):
		h.message(w, r, http.StatusOK, "No team yet", "The hosts have not split the participants into teams yet, or you joined after they did. Your team's link arrives by mail when it is ready.")
		return
	case err != nil:
		h.pages.Fail(w, r, "events desk: team of", err)
		return
	}
	h.renderTeam(w, r, http.StatusOK, m, e, t, events.SubmissionInput{}, nil)
}

// anyTeam shows team tid: to admins any team, to a participant only their
// own (at its own address).
func (h *Handler) anyTeam(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	t, ok := h.visibleTeam(w, r, m, e)
	if !ok {
		return
	}
	h.renderTeam(w, r, http.StatusOK, m, e, t, events.SubmissionInput{}, nil)
}

// visibleTeam returns the team in the path if m may see it, answering
// otherwise.
func (h *Handler) visibleTeam(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) (events.Team, bool) {
	tid := r.PathValue("tid")
	if !m.Admin {
		own, err := h.d.Events.TeamOf(r.Context(), e.ID, m.RegistrationID)
		if err != nil && !errors.Is(err, events.ErrNoTeam) {
			h.pages.Fail(w, r, "events desk: team of", err)
			return events.Team{}, false
		}
		if err != nil || own.ID != tid {
			h.message(w, r, http.StatusForbidden, "Not your team", "A team's page is for its members and the event's hosts.")
			return events.Team{}, false
		}
		return own, true
	}
	sp, err := h.d.Events.Teams(r.Context(), e.ID)
	if err != nil && !errors.Is(err, events.ErrNoTeams) {
		h.pages.Fail(w, r, "events desk: teams", err)
		return events.Team{}, false
	}
	t, ok := sp.Team(tid)
	if !ok {
		h.message(w, r, http.StatusNotFound, "Not found", "There is no such team.")
		return events.Team{}, false
	}
	return t, true
}

func (h *Handler) renderTeam(w http.ResponseWriter, r *http.Request, status int, m events.Member, e events.Event, t events.Team, form events.SubmissionInput, problems map[string]string) {
	ctx := r.Context()
	d := teamData{Event: e, Member: m, Team: t, InTeam: m.RegistrationID != "" && t.Has(m.RegistrationID), Ended: e.Past(h.d.Now()), Form: form, Problems: problems, MaxFile: h.d.MaxFile, Now: h.d.Now()}
	switch r.URL.Query().Get("ok") {
	case "help":
		d.Notice = "Your team asked for help: every host sees it now."
	case "submitted":
		d.Notice = "Your submission is saved."
	}
	sub, err := h.d.Events.SubmissionOf(ctx, e.ID, t.ID)
	switch {
	case err == nil:
		d.Submission = &sub
		if form.Title == "" && problems == nil {
			d.Form = events.SubmissionInput{Title: sub.Title, Description: sub.Description, Link: sub.Link}
		}
	case !errors.Is(err, events.ErrNotFound):
		h.pages.Fail(w, r, "events desk: submission", err)
		return
	}
	rids := append([]string(nil), t.Members...)
	if d.Submission != nil {
		rids = append(rids, d.Submission.Contributors...)
	}
	if d.Names, err = h.d.Events.Names(ctx, e.ID, rids); err != nil {
		h.pages.Fail(w, r, "events desk: names", err)
		return
	}
	f, open, err := h.d.Events.OpenHelpOf(ctx, e.ID, t.ID)
	if err != nil {
		h.pages.Fail(w, r, "events desk: open help", err)
		return
	}
	if open {
		d.Help = &f
	}
	if h.d.ChatPanel != nil {
		d.Chat = h.d.ChatPanel(e.ID, t.ID, e.Past(d.Now))
	}
	h.pages.Render(w, r, status, t.Name+" · "+e.Title, teamPage(d))
}

func (h *Handler) askHelp(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	_, err := h.d.Events.RaiseHelp(r.Context(), m)
	switch {
	case errors.Is(err, events.ErrEventOver):
		h.message(w, r, http.StatusConflict, "The event has ended", "Help is for while the event runs; it has ended.")
		return
	case errors.Is(err, events.ErrNoTeam):
		h.message(w, r, http.StatusConflict, "No team yet", "Help is asked for from a team's page; you are not in a team yet.")
		return
	case err != nil:
		h.pages.Fail(w, r, "events desk: raise help", err)
		return
	}
	http.Redirect(w, r, events.TeamPath(e.ID)+"?ok=help", http.StatusSeeOther)
}

func (h *Handler) submit(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	t, ok := h.teamOf(w, r, m, http.StatusConflict, "No team yet", "Submissions are made by teams; you are not in a team yet.")
	if !ok {
		return
	}
	in := events.SubmissionInput{Title: r.FormValue("title"), Description: r.FormValue("description"), Link: r.FormValue("link")}
	if ok, err := h.submits.Allow(r.Context(), m.RegistrationID); err != nil {
		h.pages.Fail(w, r, "events desk: submission limit", err)
		return
	} else if !ok {
		w.Header().Set("Retry-After", "3600")
		h.renderTeam(w, r, http.StatusTooManyRequests, m, e, t, in, map[string]string{"form": fmt.Sprintf("You have submitted %d times this hour, the most we take; try again later.", SubmissionsPerHour)})
		return
	}
	file, header, err := r.FormFile("file")
	switch {
	case err == nil:
		defer file.Close()
		if header.Size > 0 || header.Filename != "" {
			in.FileName, in.FileSize, in.FileBody = header.Filename, header.Size, file
		}
	case errors.Is(err, http.ErrMissingFile), errors.Is(err, http.ErrNotMultipart):
	default:
		h.renderTeam(w, r, http.StatusBadRequest, m, e, t, in, map[string]string{"file": "The file could not be read; attach it again."})
		return
	}
	_, err = h.d.Events.Submit(r.Context(), m, in)
	var v *events.ValidationError
	switch {
	case errors.Is(err, events.ErrEventOver):
		in.FileBody = nil
		h.renderTeam(w, r, http.StatusConflict, m, e, t, in, map[string]string{"form": "Submissions closed when the event ended."})
		return
	case errors.As(err, &v):
		in.FileBody = nil
		h.renderTeam(w, r, http.StatusUnprocessableEntity, m, e, t, in, v.Fields)
		return
	case err != nil:
		h.pages.Fail(w, r, "events desk: submit", err)
		return
	}
	http.Redirect(w, r, events.TeamPath(e.ID)+"?ok=submitted", http.StatusSeeOther)
}

// teamOf returns m's team; ok false means it has answered: with status,
// title and text when m is in no team, else with the failure page.
func (h *Handler) teamOf(w http.ResponseWriter, r *http.Request, m events.Member, status int, title, text string) (events.Team, bool) {
	t, err := h.d.Events.TeamOf(r.Context(), m.EventID, m.RegistrationID)
	if errors.Is(err, events.ErrNoTeam) {
		h.message(w, r, status, title, text)
		return t, false
	}
	if err != nil {
		h.pages.Fail(w, r, "events desk: team of", err)
		return t, false
	}
	return t, true
}

// file sends a team's file to its members and the event's admins (no
// one else gets past visibleTeam), as an attachment under the name it
// was uploaded with.
func (h *Handler) file(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	t, ok := h.visibleTeam(w, r, m, e)
	if !ok {
		return
	}
	body, f, err := h.d.Events.SubmissionFile(r.Context(), e.ID, t.ID)
	switch {
	case errors.Is(err, events.ErrNotFound):
		h.message(w, r, http.StatusNotFound, "No file", "This team's submission has no file.")
		return
	case err != nil:
		h.pages.Fail(w, r, "events desk: submission file", err)
		return
	}
	defer body.Close()
	hdr := w.Header()
	hdr.Set("Content-Disposition", site.Attachment(f.Name, "submission"))
	// The type was sniffed at upload from an allowed list; never let a
	// browser guess another, nor a shared cache keep a team's file.
	ctype := f.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	hdr.Set("Content-Type", ctype)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hdr.Set("Cache-Control", "private, no-store")
	hdr.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	if _, err := io.Copy(w, body); err != nil {
		// Headers are sent: abort so the browser sees a broken download,
		// not a short one that looks complete.
		panic(http.ErrAbortHandler)
	}
}

// ActivityWindow is how far back the teams table counts a team's
// messages.
const ActivityWindow = 10 * time.Minute

// Activity is what the participants did lately (Deps.Activity).
type Activity struct {
	// Connected holds the registration ids of the participants with a
	// heartbeat in the last two minutes.
	Connected map[string]bool
	// Messages counts each team's messages (by team id) in the last
	// ActivityWindow.
	Messages map[string]uint64
}

// teamsData is the admin page's teams table: every team with its members,
// how many of them are connected, its recent messages, its help request
// and its submission. The page renders it, and the admin socket sends it
// again (teamTable) when a flag changes and every FiguresEvery.
type teamsData struct {
	EventID  string
	Teams    []events.Team
	Names    map[string]string
	TeamHelp map[string]string // open or claimed, by team id
	Subs     map[string]events.Submission
	Activity *Activity // nil when unknown
}

// activity returns the event's activity, nil when there is none to show.
func (h *Handler) activity(ctx context.Context, e events.Event) *Activity {
	if h.d.Activity == nil {
		return nil
	}
	a, err := h.d.Activity(ctx, e)
	if err != nil {
		h.d.Log.Warn("events desk: team activity", "event", e.ID, "err", err)
		return nil
	}
	return &a
}

// teamHelpStates returns the state of each team's open request.
func teamHelpStates(flags []events.HelpFlag) map[string]string {
	out := map[string]string{}
	for _, f := range flags {
		if f.State != events.HelpResolved {
			out[f.TeamID] = f.State
		}
	}
	return out
}

// adminData is what the admin page shows.
type adminData struct {
	Event        events.Event
	Member       events.Member
	Split        events.Split
	Participants int
	// Unassigned counts confirmed participants in no team (registered
	// after the split).
	Unassigned  int
	Names       map[string]string
	TeamNames   map[string]string
	Teams       teamsData
	Submissions []events.Submission // latest first
	Flags       []events.HelpFlag
	Figures     templ.Component
	SplitN      string
	SplitBy     string
	Problems    map[string]string
	Notice      string
	Now         time.Time
}

func (h *Handler) admin(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	notice := ""
	switch r.URL.Query().Get("ok") {
	case "split":
		notice = "Teams split. Reshuffle until you like them, then publish."
	case "published":
		notice = "Teams published: every member was mailed their team page."
	case "latecomers":
		notice = r.URL.Query().Get("n") + " latecomer(s) added to the smallest teams and mailed their team page."
		if _, err := strconv.Atoi(r.URL.Query().Get("n")); err != nil {
			notice = ""
		}
	case "claim":
		notice = "You claimed the request: open the team's chat."
	case "resolve":
		notice = "Request resolved."
	}
	h.renderAdmin(w, r, http.StatusOK, m, e, adminForm{n: "4", by: "size"}, nil, notice)
}

type adminForm struct{ n, by string }

func (h *Handler) renderAdmin(w http.ResponseWriter, r *http.Request, status int, m events.Member, e events.Event, f adminForm, problems map[string]string, notice string) {
	ctx := r.Context()
	d := adminData{Event: e, Member: m, SplitN: f.n, SplitBy: f.by, Problems: problems, Notice: notice, Now: h.d.Now(),
		TeamNames: map[string]string{}}
	subsOf := map[string]events.Submission{}
	sp, err := h.d.Events.Teams(ctx, e.ID)
	if err != nil && !errors.Is(err, events.ErrNoTeams) {
		h.pages.Fail(w, r, "events desk: teams", err)
		return
	}
	d.Split = sp
	parts, err := h.d.Events.Participants(ctx, e.ID)
	if err != nil {
		h.pages.Fail(w, r, "events desk: participants", err)
		return
	}
	d.Participants = len(parts)
	var rids []string
	for _, t := range sp.Teams {
		d.TeamNames[t.ID] = t.Name
		rids = append(rids, t.Members...)
	}
	d.Unassigned = max(len(parts)-len(rids), 0)
	subs, err := h.d.Events.Submissions(ctx, e.ID)
	if err != nil {
		h.pages.Fail(w, r, "events desk: submissions", err)
		return
	}
	for _, s := range subs {
		subsOf[s.TeamID] = s
		rids = append(rids, s.Contributors...)
	}
	d.Submissions = subs
	if d.Names, err = h.d.Events.Names(ctx, e.ID, rids); err != nil {
		h.pages.Fail(w, r, "events desk: names", err)
		return
	}
	if d.Flags, err = h.d.Events.HelpFlags(ctx, e.ID); err != nil {
		h.pages.Fail(w, r, "events desk: help flags", err)
		return
	}
	d.Teams = teamsData{EventID: e.ID, Teams: sp.Teams, Names: d.Names, TeamHelp: teamHelpStates(d.Flags), Subs: subsOf, Activity: h.activity(ctx, e)}
	if h.d.Figures != nil {
		d.Figures = h.d.Figures(ctx, e)
	}
	h.pages.Render(w, r, status, "Admin · "+e.Title, adminPage(d))
}

func (h *Handler) split(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	f := adminForm{n: strings.TrimSpace(r.PostFormValue("n")), by: r.PostFormValue("by")}
	n, err := strconv.Atoi(f.n)
	if err != nil || n < 1 || n > events.MaxCapacity {
		h.renderAdmin(w, r, http.StatusUnprocessableEntity, m, e, f, map[string]string{"by": "Give a whole number of at least 1."}, "")
		return
	}
	by := events.SplitBy{Size: n}
	if f.by == "count" {
		by = events.SplitBy{Count: n}
	}
	_, err = h.d.Events.SplitTeams(r.Context(), m, by)
	var v *events.ValidationError
	switch {
	case errors.As(err, &v):
		h.renderAdmin(w, r, http.StatusUnprocessableEntity, m, e, f, v.Fields, "")
		return
	case errors.Is(err, events.ErrNoParticipants), errors.Is(err, events.ErrTeamsPublished):
		h.renderAdmin(w, r, http.StatusConflict, m, e, f, map[string]string{"by": err.Error()}, "")
		return
	case err != nil:
		h.pages.Fail(w, r, "events desk: split", err)
		return
	}
	http.Redirect(w, r, adminPath(e.ID)+"?ok=split", http.StatusSeeOther)
}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	_, err := h.d.Events.PublishTeams(r.Context(), m, e)
	switch {
	case errors.Is(err, events.ErrNoTeams):
		h.renderAdmin(w, r, http.StatusConflict, m, e, adminForm{n: "4", by: "size"}, map[string]string{"by": "Split the participants into teams first."}, "")
		return
	case err != nil:
		h.pages.Fail(w, r, "events desk: publish teams", err)
		return
	}
	http.Redirect(w, r, adminPath(e.ID)+"?ok=published", http.StatusSeeOther)
}

func (h *Handler) latecomers(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	_, n, err := h.d.Events.AddLatecomers(r.Context(), m, e)
	switch {
	case errors.Is(err, events.ErrNoTeams):
		h.renderAdmin(w, r, http.StatusConflict, m, e, adminForm{n: "4", by: "size"}, map[string]string{"by": "Publish the teams first; until then a reshuffle includes everyone."}, "")
		return
	case err != nil:
		h.pages.Fail(w, r, "events desk: add latecomers", err)
		return
	}
	http.Redirect(w, r, adminPath(e.ID)+"?ok=latecomers&n="+strconv.Itoa(n), http.StatusSeeOther)
}

func (h *Handler) helpAction(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	fid, action := r.PathValue("fid"), r.PathValue("action")
	var err error
	switch action {
	case "claim":
		_, err = h.d.Events.ClaimHelp(r.Context(), m, fid)
	case "resolve":
		_, err = h.d.Events.ResolveHelp(r.Context(), m, fid)
	default:
		h.message(w, r, http.StatusNotFound, "Not found", "There is no such action.")
		return
	}
	switch {
	case errors.Is(err, events.ErrNotFound):
		h.message(w, r, http.StatusNotFound, "Not found", "There is no such help request.")
		return
	case errors.Is(err, events.ErrFlagResolved):
		http.Redirect(w, r, adminPath(e.ID)+"?ok=resolve", http.StatusSeeOther)
		return
	case err != nil:
		h.pages.Fail(w, r, "events desk: "+action+" help", err)
		return
	}
	http.Redirect(w, r, adminPath(e.ID)+"?ok="+action, http.StatusSeeOther)
}

func (h *Handler) lostLinkForm(w http.ResponseWriter, r *http.Request) {
	e, ok := h.publicEvent(w, r)
	if !ok {
		return
	}
	h.pages.Render(w, r, http.StatusOK, "Lost your team link?", lostLinkPage(e, "", nil, false))
}

// publicEvent returns the published event of the path; ok false means it
// has answered (404, or the failure page).
func (h *Handler) publicEvent(w http.ResponseWriter, r *http.Request) (events.Event, bool) {
	e, err := h.d.Events.PublicEvent(r.Context(), r.PathValue("id"))
	if errors.Is(err, events.ErrNotFound) {
		h.message(w, r, http.StatusNotFound, "Not found", "There is no such event.")
		return e, false
	}
	if err != nil {
		h.pages.Fail(w, r, "events desk: event", err)
		return e, false
	}
	return e, true
}

// lostLink re-sends the team link to a registered address. It answers the
// same whether or not the address is registered, in a team, or the mail
// could be queued: the page must not tell who takes part. Limits are
// counted before anything is looked up, so they say nothing either.
func (h *Handler) lostLink(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	e, ok := h.publicEvent(w, r)
	if !ok {
		return
	}
	raw := strings.TrimSpace(r.PostFormValue("email"))
	email, err := accounts.NormaliseEmail(raw)
	if err != nil {
		h.pages.Render(w, r, http.StatusUnprocessableEntity, "Lost your team link?", lostLinkPage(e, raw, map[string]string{"email": "That does not look like an email address."}, false))
		return
	}
	ok, err = h.lostByClient.Allow(ctx, site.ClientIP(r))
	if err == nil && ok {
		ok, err = h.lostByInbox.Allow(ctx, email)
	}
	if err != nil {
		h.d.Log.Error("events desk: lost-link rate limit", "err", err)
		h.message(w, r, http.StatusServiceUnavailable, "Try again", "We cannot send links just now; try again in a minute.")
		return
	}
	if !ok {
		w.Header().Set("Retry-After", "600")
		h.message(w, r, http.StatusTooManyRequests, "Too many requests", "Too many links were asked for from here or for this address. Try again later.")
		return
	}
	if _, err := h.d.Events.ResendTeamLink(ctx, e, email); err != nil {
		h.d.Log.Error("events desk: resend team link", "event", e.ID, "err", err)
	}
	h.pages.Render(w, r, http.StatusOK, "Lost your team link?", lostLinkPage(e, "", nil, true))
}

// Helpers for the templates.

func teamName(names map[string]string, tid string) string {
	if n := names[tid]; n != "" {
		return n
	}
	return "A team"
}

func claimer(f events.HelpFlag, viewer string) string {
	if f.ClaimedBy == viewer {
		return "you"
	}
	return "another host"
}

// joinNames lists the names of registrations rids.
func joinNames(names map[string]string, rids []string) string {
	out := make([]string, len(rids))
	for i, rid := range rids {
		out[i] = names[rid]
	}
	return strings.Join(out, ", ")
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// seconds formats a wait for people: "45 s", "3 min 5 s", "1 h 2 min".
func seconds(d time.Duration) string {
	s := max(int64(d/time.Second), 0)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min %d s", s/60, s%60)
	}
	return fmt.Sprintf("%d h %d min", s/3600, s%3600/60)
}

// IsSubmitPath tells whether path is a team submission's upload
// route, the one page route that takes a multipart body.
func IsSubmitPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/events/")
	if !ok {
		return false
	}
	id, tail, ok := strings.Cut(rest, "/")
	return ok && ids.Valid(id) && tail == "live/team/submit"
}

// MaySubmit tells, reading nothing of the request's body, whether the
// signed-in user (uid, email) may post the submission at path: only a
// member of one of the event's teams may have an upload read at all. It
// returns 0 when so, else the status and message that refuse it.
func (h *Handler) MaySubmit(ctx context.Context, path, uid, email string) (int, string) {
	rest, _ := strings.CutPrefix(path, "/events/")
	eid, _, _ := strings.Cut(rest, "/")
	m, _, err := h.d.Events.Member(ctx, eid, uid, email)
	switch {
	case errors.Is(err, events.ErrNotFound):
		return http.StatusNotFound, "There is no such event."
	case errors.Is(err, events.ErrNotMember):
		return http.StatusForbidden, "Only the event's teams submit projects; sign in with the address you registered."
	case err != nil:
		h.d.Log.Error("events desk: member for submission", "event", eid, "err", err)
		return http.StatusServiceUnavailable, "Submissions are unavailable right now; try again in a moment."
	}
	_, err = h.d.Events.TeamOf(ctx, eid, m.RegistrationID)
	switch {
	case errors.Is(err, events.ErrNoTeam):
		return http.StatusForbidden, "Submissions are made by teams; you are not in a team of this event."
	case err != nil:
		h.d.Log.Error("events desk: team for submission", "event", eid, "err", err)
		return http.StatusServiceUnavailable, "Submissions are unavailable right now; try again in a moment."
	}
	return 0, ""
}

// uploadWithin bounds how long a submission's body may take to arrive.
const uploadWithin = 5 * time.Minute

// LimitUpload bounds a submission's body before anything reads it (the
// CSRF check parses the form): the file's limit plus 1 MiB for the text
// fields, within uploadWithin; the form is parsed here with 1 MiB in
// memory, the rest spooled to a temporary file that ends with the request.
func LimitUpload(maxFile int64, next http.Handler) http.Handler {
	if maxFile <= 0 {
		maxFile = events.DefaultMaxSubmissionFile
	}
	limit := maxFile + 1<<20
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tooBig := fmt.Sprintf("This submission is larger than %s; a submission's file may be up to %s.", events.MB(limit), events.MB(maxFile))
		if r.ContentLength > limit {
			http.Error(w, tooBig, http.StatusRequestEntityTooLarge)
			return
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadWithin))
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, tooBig, http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "The form could not be read: "+err.Error(), http.StatusBadRequest)
			return
		}
		if r.MultipartForm != nil {
			defer r.MultipartForm.RemoveAll()
		}
		next.ServeHTTP(w, r)
	})
}

// connectedIn counts team t's members connected now.
func connectedIn(a Activity, t events.Team) int {
	n := 0
	for _, rid := range t.Members {
		if a.Connected[rid] {
			n++
		}
	}
	return n
}

// minutes formats a window for a column heading: "last 10 min".
func minutes(d time.Duration) string { return fmt.Sprintf("last %d min", int(d/time.Minute)) }
