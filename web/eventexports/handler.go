// Package eventexports is the Events product's export pages (seed 001,
// "Exports"): an event's participants as a CSV download or a mailed link,
// exports into the organiser's HubSpot or Salesforce with their progress
// and per-contact failures, and the organiser's integration settings
// (HubSpot private-app token; Salesforce connected through OAuth). The
// rules live in internal/events and internal/crm; the work is done by the
// events-export role (workers/eventsexport).
package eventexports

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/crm"
	"jetfleet/internal/crm/hubspot"
	"jetfleet/internal/crm/salesforce"
	"jetfleet/internal/events"
	"jetfleet/internal/ids"
	"jetfleet/subjects"
	"jetfleet/web/ratelimit"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

// Deps are what the pages use.
type Deps struct {
	Events *events.Service
	Runs   *crm.Runs
	// Creds keeps CRM credentials; nil (no TOKEN_KEY) disables the
	// integrations, and the page says so.
	Creds *crm.Credentials
	// Salesforce is the OAuth client; unconfigured (no client id) hides
	// the Connect button.
	Salesforce *salesforce.Client
	// HubSpot checks a pasted private-app token before it is kept; nil
	// asks HubSpot itself (hubspot.DefaultBaseURL).
	HubSpot *hubspot.Client
	JS      jetstream.JetStream
	Log     *slog.Logger
	Now     func() time.Time
}

// Handler serves the pages.
type Handler struct {
	d     Deps
	pages site.Pages
	// requests limits export requests per event and target, on every
	// edge together.
	requests *ratelimit.Shared
}

// ExportsPerHour is how many exports of one event to one target (mailed
// CSV, HubSpot, Salesforce) its hosts may ask for in an hour: each is a
// whole run (a mail; a push of every contact spending the organiser's
// CRM API limits), and a host who is not the organiser may ask too.
const ExportsPerHour = 6

// New returns the handler.
func New(d Deps) (*Handler, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.HubSpot == nil {
		d.HubSpot = hubspot.New(hubspot.Config{})
	}
	requests, err := ratelimit.NewShared(d.JS, "events-exports", ExportsPerHour, time.Hour)
	if err != nil {
		return nil, err
	}
	return &Handler{d: d, pages: site.Pages{Log: d.Log}, requests: requests}, nil
}

// Routes registers the pages on mux behind protect (the sign-in gate).
func (h *Handler) Routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	on := func(pattern string, f func(w http.ResponseWriter, r *http.Request, u session.User)) {
		mux.Handle(pattern, protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, _ := session.UserFrom(r.Context())
			f(w, r, u)
		})))
	}
	on("GET /events/organise/{id}/exports", h.page)
	on("GET /events/organise/{id}/exports/participants.csv", h.download)
	on("POST /events/organise/{id}/exports/{target}", h.start)
	on("GET /events/integrations", h.integrations)
	on("POST /events/integrations/hubspot", h.saveHubSpot)
	on("POST /events/integrations/salesforce/connect", h.connectSalesforce)
	on("GET /events/integrations/salesforce/callback", h.salesforceCallback)
	on("POST /events/integrations/{crm}/disconnect", h.disconnect)
}

// admin returns the event of the path to one of its admins; ok false has
// answered 404 (to anyone else too: an event's existence is not revealed).
func (h *Handler) admin(w http.ResponseWriter, r *http.Request, u session.User) (events.Event, bool) {
	e, err := h.d.Events.ExportAdmin(r.Context(), r.PathValue("id"), u.ID, u.Email)
	if errors.Is(err, events.ErrNotFound) {
		h.pages.Render(w, r, http.StatusNotFound, "Not found", notFoundView())
		return events.Event{}, false
	}
	if err != nil {
		h.pages.Fail(w, r, "load event", err)
		return events.Event{}, false
	}
	return e, true
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request, u session.User) {
	e, ok := h.admin(w, r, u)
	if !ok {
		return
	}
	h.render(w, r, u, http.StatusOK, e, r.URL.Query().Get("ok"), "")
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, u session.User, status int, e events.Event, notice, problem string) {
	ctx := r.Context()
	d := pageData{Event: e, Notice: notices[notice], Problem: problem, Runs: map[string]crm.Run{}, Integrations: h.d.Creds != nil}
	_, contacts, err := h.d.Events.ExportContacts(ctx, e.ID)
	if err != nil {
		h.pages.Fail(w, r, "export contacts", err)
		return
	}
	d.Contacts = len(contacts)
	for _, t := range []string{subjects.EventsExportCSV, crm.HubSpot, crm.Salesforce} {
		run, _, err := h.d.Runs.Get(ctx, e.ID, t)
		if err == nil {
			d.Runs[t] = run
		} else if !errors.Is(err, crm.ErrNoRun) {
			h.pages.Fail(w, r, "export runs", err)
			return
		}
	}
	if h.d.Creds != nil {
		if d.Connected, err = h.d.Creds.Connections(ctx, e.OrganiserID); err != nil {
			h.pages.Fail(w, r, "integrations", err)
			return
		}
	}
	d.IsOrganiser = u.ID == e.OrganiserID
	h.pages.Render(w, r, status, "Exports · "+e.Title, exportsPage(d))
}

func (h *Handler) download(w http.ResponseWriter, r *http.Request, u session.User) {
	e, ok := h.admin(w, r, u)
	if !ok {
		return
	}
	_, contacts, err := h.d.Events.ExportContacts(r.Context(), e.ID)
	if err != nil {
		h.pages.Fail(w, r, "export contacts", err)
		return
	}
	// Built whole before the first byte: an error never leaves half a file.
	var buf bytes.Buffer
	if err := events.WriteContactsCSV(&buf, contacts); err != nil {
		h.pages.Fail(w, r, "write CSV", err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="participants-`+e.ID+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(buf.Bytes())
	h.d.Log.Info("participants CSV downloaded", "event", e.ID, "user", u.ID, "rows", len(contacts))
}

// start queues an export: the CSV mailed to the admin who asks, or the
// contacts into one of the organiser's CRMs.
func (h *Handler) start(w http.ResponseWriter, r *http.Request, u session.User) {
	e, ok := h.admin(w, r, u)
	if !ok {
		return
	}
	target := r.PathValue("target")
	job := subjects.EventsExportJob{EventID: e.ID, Target: target, RunID: ids.New(), RequestedBy: u.ID, At: h.d.Now().UTC()}
	switch target {
	case subjects.EventsExportCSV:
		job.MailTo = u.Email
	case crm.HubSpot, crm.Salesforce:
		if h.d.Creds == nil {
			h.render(w, r, u, http.StatusConflict, e, "", "Integrations are switched off on this installation (TOKEN_KEY is not set).")
			return
		}
		conns, err := h.d.Creds.Connections(r.Context(), e.OrganiserID)
		if err != nil {
			h.pages.Fail(w, r, "integrations", err)
			return
		}
		if _, ok := conns[target]; !ok {
			h.render(w, r, u, http.StatusConflict, e, "", "The organiser has not connected "+crmName(target)+" yet: connect it on the integrations page first.")
			return
		}
	default:
		h.pages.Render(w, r, http.StatusNotFound, "Not found", notFoundView())
		return
	}
	if ok, err := h.requests.Allow(r.Context(), e.ID+"/"+target); err != nil {
		h.pages.Fail(w, r, "export limit", err)
		return
	} else if !ok {
		w.Header().Set("Retry-After", "3600")
		h.render(w, r, u, http.StatusTooManyRequests, e, "", fmt.Sprintf("This event's %s export was asked for %d times this hour, the most we take; the last one's progress shows below. Try again later.", crmName(target), ExportsPerHour))
		return
	}
	if err := crm.Request(r.Context(), h.d.JS, h.d.Runs, job); err != nil {
		h.pages.Fail(w, r, "queue export", err)
		return
	}
	http.Redirect(w, r, "/events/organise/"+e.ID+"/exports?ok="+target, http.StatusSeeOther)
}

func (h *Handler) integrations(w http.ResponseWriter, r *http.Request, u session.User) {
	h.renderIntegrations(w, r, u, http.StatusOK, r.URL.Query().Get("ok"), nil)
}

func (h *Handler) renderIntegrations(w http.ResponseWriter, r *http.Request, u session.User, status int, notice string, problems map[string]string) {
	d := integrationsData{Notice: notices[notice], Problems: problems, Enabled: h.d.Creds != nil,
		SalesforceConfigured: h.d.Salesforce != nil && h.d.Salesforce.Configured()}
	if h.d.Salesforce != nil {
		d.ExternalIDField = h.d.Salesforce.ExternalIDField()
	}
	if h.d.Creds != nil {
		var err error
		if d.Connected, err = h.d.Creds.Connections(r.Context(), u.ID); err != nil {
			h.pages.Fail(w, r, "integrations", err)
			return
		}
	}
	h.pages.Render(w, r, status, "Integrations", integrationsPage(d))
}

// MaxTokenLen bounds a pasted token.
const MaxTokenLen = 300

// VerifyTimeout bounds the check of a pasted token with HubSpot.
const VerifyTimeout = 10 * time.Second

func (h *Handler) saveHubSpot(w http.ResponseWriter, r *http.Request, u session.User) {
	if h.d.Creds == nil {
		h.renderIntegrations(w, r, u, http.StatusConflict, "", map[string]string{"hubspot_token": "Integrations are switched off on this installation (TOKEN_KEY is not set)."})
		return
	}
	token := strings.TrimSpace(r.PostFormValue("hubspot_token"))
	problem := ""
	switch {
	case token == "":
		problem = "Paste the access token of your HubSpot private app (Settings → Integrations → Private apps; scope crm.objects.contacts.write)."
	case len(token) > MaxTokenLen || strings.ContainsFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		problem = "That does not look like a HubSpot access token: paste it without spaces or line breaks."
	case !strings.HasPrefix(token, "pat-"):
		problem = "HubSpot private-app tokens start with pat- (e.g. pat-na1-…)."
	}
	if problem != "" {
		h.renderIntegrations(w, r, u, http.StatusUnprocessableEntity, "", map[string]string{"hubspot_token": problem})
		return
	}
	// Ask HubSpot before keeping it: a mistyped, rotated or under-scoped
	// token would otherwise only show when the first export fails.
	ctx, cancel := context.WithTimeout(r.Context(), VerifyTimeout)
	defer cancel()
	if _, err := h.d.HubSpot.VerifyToken(ctx, token); err != nil {
		status, msg := http.StatusUnprocessableEntity, ""
		switch {
		case errors.Is(err, crm.ErrUnauthorized):
			msg = "HubSpot does not accept this token: copy the access token of your private app again (it changes when rotated). Nothing was saved."
		case errors.Is(err, hubspot.ErrMissingScope):
			msg = "This private app lacks the " + hubspot.Scope + " scope: add it in HubSpot, then paste the token again. Nothing was saved."
		default:
			status, msg = http.StatusBadGateway, "Couldn't reach HubSpot to check the token; try again. Nothing was saved."
		}
		h.d.Log.Info("HubSpot token not saved", "user", u.ID, "err", err)
		h.renderIntegrations(w, r, u, status, "", map[string]string{"hubspot_token": msg})
		return
	}
	if err := h.d.Creds.Put(r.Context(), crm.HubSpot, u.ID, []byte(token), ""); err != nil {
		h.pages.Fail(w, r, "save HubSpot token", err)
		return
	}
	h.d.Log.Info("HubSpot connected", "user", u.ID)
	http.Redirect(w, r, "/events/integrations?ok=hubspot-connected", http.StatusSeeOther)
}

func (h *Handler) connectSalesforce(w http.ResponseWriter, r *http.Request, u session.User) {
	if h.d.Creds == nil || h.d.Salesforce == nil || !h.d.Salesforce.Configured() {
		h.renderIntegrations(w, r, u, http.StatusConflict, "", map[string]string{"salesforce": "Salesforce is not set up on this installation (SALESFORCE_CLIENT_ID)."})
		return
	}
	state, verifier, err := h.d.Creds.BeginOAuth(r.Context(), u.ID)
	if err != nil {
		h.pages.Fail(w, r, "begin Salesforce connection", err)
		return
	}
	http.Redirect(w, r, h.d.Salesforce.AuthCodeURL(state, verifier), http.StatusSeeOther)
}

func (h *Handler) salesforceCallback(w http.ResponseWriter, r *http.Request, u session.User) {
	q := r.URL.Query()
	if h.d.Creds == nil || h.d.Salesforce == nil {
		h.renderIntegrations(w, r, u, http.StatusConflict, "", map[string]string{"salesforce": "Salesforce is not set up on this installation."})
		return
	}
	verifier, err := h.d.Creds.FinishOAuth(r.Context(), u.ID, q.Get("state"))
	if errors.Is(err, crm.ErrBadState) {
		h.renderIntegrations(w, r, u, http.StatusBadRequest, "", map[string]string{"salesforce": err.Error()})
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "finish Salesforce connection", err)
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "Salesforce did not grant access (" + e + ")."
		if e == "access_denied" {
			msg = "You did not allow access in Salesforce; nothing was connected."
		}
		h.renderIntegrations(w, r, u, http.StatusOK, "", map[string]string{"salesforce": msg})
		return
	}
	conn, err := h.d.Salesforce.Exchange(r.Context(), q.Get("code"), verifier)
	if err != nil {
		h.d.Log.Warn("Salesforce token exchange failed", "user", u.ID, "err", err)
		h.renderIntegrations(w, r, u, http.StatusBadGateway, "", map[string]string{"salesforce": "Salesforce refused to complete the connection; try again."})
		return
	}
	b, _ := json.Marshal(conn)
	if err := h.d.Creds.Put(r.Context(), crm.Salesforce, u.ID, b, conn.InstanceURL); err != nil {
		h.pages.Fail(w, r, "save Salesforce connection", err)
		return
	}
	h.d.Log.Info("Salesforce connected", "user", u.ID, "instance", conn.InstanceURL)
	http.Redirect(w, r, "/events/integrations?ok=salesforce-connected", http.StatusSeeOther)
}

func (h *Handler) disconnect(w http.ResponseWriter, r *http.Request, u session.User) {
	target := r.PathValue("crm")
	if target != crm.HubSpot && target != crm.Salesforce {
		h.pages.Render(w, r, http.StatusNotFound, "Not found", notFoundView())
		return
	}
	if h.d.Creds != nil {
		if err := h.d.Creds.Delete(r.Context(), target, u.ID); err != nil {
			h.pages.Fail(w, r, "disconnect", err)
			return
		}
	}
	http.Redirect(w, r, "/events/integrations?ok="+target+"-disconnected", http.StatusSeeOther)
}

var notices = map[string]string{
	subjects.EventsExportCSV:  "The CSV is on its way to your inbox; its link works for 7 days.",
	crm.HubSpot:               "Export to HubSpot started; its progress shows below.",
	crm.Salesforce:            "Export to Salesforce started; its progress shows below.",
	"hubspot-connected":       "HubSpot is connected. The token is stored encrypted and is never shown again.",
	"salesforce-connected":    "Salesforce is connected.",
	"hubspot-disconnected":    "HubSpot is disconnected; its token is deleted.",
	"salesforce-disconnected": "Salesforce is disconnected; its token is deleted.",
}

func crmName(t string) string {
	switch t {
	case crm.HubSpot:
		return "HubSpot"
	case crm.Salesforce:
		return "Salesforce"
	}
	return "CSV"
}
