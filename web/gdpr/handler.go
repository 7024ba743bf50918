// Package gdpr is the edge of people's GDPR requests: the "your data" page
// where a signed-in person asks for a copy of their data or its deletion,
// the magic-link mail that confirms it, and the confirmation page that puts
// it on the GDPR queue. The rules live in internal/gdpr; the work is done by
// the gdpr worker role.
package gdpr

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/gdpr"
	"jetfleet/internal/mail"
	"jetfleet/subjects"
	"jetfleet/web/ratelimit"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

// Deps are what the pages use.
type Deps struct {
	Requests *gdpr.Requests
	Accounts *accounts.Store
	JS       jetstream.JetStream // for queuing mail
	BaseURL  string
	Outbox   bool
	Log      *slog.Logger
}

// Handler serves the pages.
type Handler struct {
	d      Deps
	pages  site.Pages
	byUser *ratelimit.Shared
}

// New returns the handler.
func New(d Deps) (*Handler, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.BaseURL = strings.TrimRight(d.BaseURL, "/")
	// Each request mails a link: 3 per user in 15 minutes, on every edge.
	byUser, err := ratelimit.NewShared(d.JS, "gdpr-user", 3, 15*time.Minute)
	if err != nil {
		return nil, err
	}
	return &Handler{d: d, pages: site.Pages{Log: d.Log}, byUser: byUser}, nil
}

// Routes registers the pages, each behind protect, the site's sign-in
// gate.
func (h *Handler) Routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	signedIn := func(next func(w http.ResponseWriter, r *http.Request, userID, email string)) http.Handler {
		return protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, _ := session.UserFrom(r.Context())
			next(w, r, u.ID, u.Email)
		}))
	}
	mux.Handle("GET /account/data", signedIn(h.page))
	mux.Handle("POST /account/data/request", signedIn(h.request))
	mux.Handle("GET /account/data/confirm/{id}", signedIn(h.confirmForm))
	mux.Handle("POST /account/data/confirm/{id}", signedIn(h.confirm))
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request, _, email string) {
	h.pages.Render(w, r, http.StatusOK, "Your data", dataPage(email, ""))
}

func (h *Handler) request(w http.ResponseWriter, r *http.Request, uid, email string) {
	kind := r.PostFormValue("kind")
	switch {
	case kind != subjects.GDPRKindExport && kind != subjects.GDPRKindDelete:
		h.pages.Render(w, r, http.StatusUnprocessableEntity, "Your data", dataPage(email, "Choose one of the two requests below."))
		return
	case kind == subjects.GDPRKindDelete && r.PostFormValue("understood") != "yes":
		h.pages.Render(w, r, http.StatusUnprocessableEntity, "Your data", dataPage(email, "Tick the box to confirm you understand that deletion is for good."))
		return
	}
	if ok, err := h.byUser.Allow(r.Context(), uid); err != nil {
		h.pages.Fail(w, r, "rate limit GDPR request", err)
		return
	} else if !ok {
		h.pages.Render(w, r, http.StatusTooManyRequests, "Your data", dataPage(email, "Too many requests. Wait a few minutes, then try again."))
		return
	}
	req, nonce, err := h.d.Requests.Create(r.Context(), kind, uid, email)
	if err != nil {
		h.pages.Fail(w, r, "create GDPR request", err)
		return
	}
	next := "/account/data/confirm/" + req.ID + "?n=" + url.QueryEscape(nonce)
	token, err := h.d.Accounts.IssueLink(r.Context(), email, next)
	if err != nil {
		h.pages.Fail(w, r, "issue GDPR link", err)
		return
	}
	what := "send you a copy of your data"
	if kind == subjects.GDPRKindDelete {
		what = "DELETE your account and data"
	}
	link := h.d.BaseURL + "/signin/verify?token=" + url.QueryEscape(token)
	err = mail.Enqueue(r.Context(), h.d.JS, subjects.Mail{
		ID: "gdpr-confirm:" + req.ID, To: email, Subject: "Confirm your data request",
		Text: "Hello,\n\nSomeone signed in as you asked us to " + what + ". Open this link to confirm it:\n\n" + link +
			"\n\nIt works once, for 15 minutes. If it was not you, ignore this mail and nothing happens.\n",
	})
	if err != nil {
		h.pages.Fail(w, r, "enqueue GDPR confirmation mail", err)
		return
	}
	h.pages.Render(w, r, http.StatusOK, "Check your email", checkMailPage(email, h.d.Outbox))
}

func (h *Handler) confirmForm(w http.ResponseWriter, r *http.Request, uid, _ string) {
	nonce := r.URL.Query().Get("n")
	req, err := h.d.Requests.For(r.Context(), r.PathValue("id"), uid, nonce)
	if errors.Is(err, gdpr.ErrNotFound) {
		h.pages.Render(w, r, http.StatusNotFound, "Request not found", problemPage("There is no such request for your account, or it expired. Make a new one."))
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "load GDPR request", err)
		return
	}
	h.pages.Render(w, r, http.StatusOK, "Confirm your request", confirmPage(req, nonce))
}

func (h *Handler) confirm(w http.ResponseWriter, r *http.Request, uid, _ string) {
	req, err := h.d.Requests.Confirm(r.Context(), r.PathValue("id"), uid, r.PostFormValue("n"))
	if errors.Is(err, gdpr.ErrNotFound) {
		h.pages.Render(w, r, http.StatusNotFound, "Request not found", problemPage("There is no such request for your account, or it expired. Make a new one."))
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "confirm GDPR request", err)
		return
	}
	h.pages.Render(w, r, http.StatusOK, "Request confirmed", queuedPage(req))
}
