// Package events is the Events product's edge: public browsing of upcoming
// live events, event pages and registration (magic link → confirm → Stripe
// Checkout for paid tickets), participants' "my events", and the organiser
// pages (dashboard, drafts, ticket types, publishing, Stripe Connect). The
// rules live in internal/events; this package parses forms and renders.
package events

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/events"
	"jetfleet/internal/ids"
	"jetfleet/internal/mail"
	"jetfleet/internal/payments"
	"jetfleet/subjects"
	"jetfleet/web/ratelimit"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

// Deps are what the pages use.
type Deps struct {
	Events   *events.Service
	Catalog  *events.Catalog
	Accounts *accounts.Store
	// Payments is Stripe; nil means paid tickets cannot be sold here (the
	// organiser is told so, and publishing with paid tickets is refused).
	Payments *payments.Client
	// Subscriptions takes the webhook's subscription events (the Tracker's
	// premium plan): Stripe has one endpoint URL and one secret for the
	// site, so the ticket webhook hands these on. nil acknowledges them.
	Subscriptions func(ctx context.Context, ev payments.SubscriptionEvent) error
	JS            jetstream.JetStream // for queuing mail
	BaseURL       string
	Outbox        bool // development install: point people at /outbox
	Log           *slog.Logger
	Now           func() time.Time
}

// Handler serves the Events pages.
type Handler struct {
	d     Deps
	pages site.Pages
	// Registration limits, shared by every edge (counted in JetStream): per
	// client address, and per inbox a confirmation mail would go to.
	byClient *ratelimit.Shared
	byEmail  *ratelimit.Shared
	// protect is the site's sign-in gate, given to Routes.
	protect func(http.Handler) http.Handler
}

// New returns the handler.
func New(d Deps) (*Handler, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	d.BaseURL = strings.TrimRight(d.BaseURL, "/")
	byClient, err := ratelimit.NewShared(d.JS, "events-register-client", 10, time.Minute) // registrations per client address
	if err != nil {
		return nil, err
	}
	byEmail, err := ratelimit.NewShared(d.JS, "events-register-inbox", 5, 10*time.Minute) // confirmation mails per inbox
	if err != nil {
		return nil, err
	}
	return &Handler{d: d, pages: site.Pages{Log: d.Log}, byClient: byClient, byEmail: byEmail}, nil
}

// Routes registers the pages on mux, those for signed-in people behind
// protect (the site's sign-in gate), registration behind identify (the same
// check, letting visitors through), and the Stripe webhook on api (outside
// the session and CSRF middleware: Stripe signs it instead).
func (h *Handler) Routes(mux, api *http.ServeMux, protect, identify func(http.Handler) http.Handler) {
	h.protect = protect
	mux.HandleFunc("GET /events", h.browse)
	mux.Handle("GET /events/e/{id}", h.validIDs(http.HandlerFunc(h.eventPage)))
	mux.Handle("POST /events/e/{id}/register", identify(h.validIDs(http.HandlerFunc(h.register))))
	mux.Handle("GET /events/e/{id}/r/{rid}", h.signedIn(h.registration))
	mux.Handle("POST /events/e/{id}/r/{rid}/confirm", h.signedIn(h.confirm))
	mux.Handle("POST /events/e/{id}/r/{rid}/cancel", h.signedIn(h.cancel))
	mux.Handle("GET /events/mine", h.signedIn(h.mine))
	mux.Handle("GET /events/organise", h.signedIn(h.dashboard))
	mux.Handle("GET /events/organise/new", h.signedIn(h.newForm))
	mux.Handle("POST /events/organise/new", h.signedIn(h.create))
	mux.Handle("GET /events/organise/{id}", h.signedIn(h.manage))
	mux.Handle("POST /events/organise/{id}/edit", h.signedIn(h.edit))
	mux.Handle("POST /events/organise/{id}/tickets", h.signedIn(h.addTicket))
	mux.Handle("POST /events/organise/{id}/tickets/{tid}/delete", h.signedIn(h.removeTicket))
	mux.Handle("POST /events/organise/{id}/publish", h.signedIn(h.publish))
	mux.Handle("POST /events/organise/{id}/hosts", h.signedIn(h.addHost))
	mux.Handle("POST /events/organise/{id}/hosts/remove", h.signedIn(h.removeHost))
	mux.Handle("POST /events/stripe/connect", h.signedIn(h.connect))
	mux.Handle("GET /events/stripe/return", h.signedIn(h.stripeReturn))
	mux.Handle("GET /events/stripe/refresh", h.signedIn(h.stripeRefresh))
	api.HandleFunc("POST /api/events/stripe/webhook", h.webhook)
}

type user struct{ ID, Email string }

// pathIDs are the path wildcards of the Events routes that hold record ids.
var pathIDs = []string{"id", "rid", "tid"}

// validIDs answers 404 when an id in the path (event, registration,
// ticket type) could not have been made by ids.New, before the handler
// runs: an id becomes part of a KV key, where '.' or '*' would change its
// meaning. A route without one of the wildcards has it empty.
func (h *Handler) validIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, name := range pathIDs {
			if v := r.PathValue(name); v != "" && !ids.Valid(v) {
				h.notFound(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// signedIn hands a page the user the gate let through, once the ids in its
// path are well formed.
func (h *Handler) signedIn(next func(w http.ResponseWriter, r *http.Request, u user)) http.Handler {
	// The gate first: a signed-out visitor is sent to sign in whatever the
	// path holds.
	return h.protect(h.validIDs(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := session.UserFrom(r.Context())
		next(w, r, user{ID: u.ID, Email: u.Email})
	})))
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.pages.Render(w, r, http.StatusNotFound, "Not found", messagePage("Not found", "There is no such event or registration, or it is not yours."))
}

// ---- public ----

func (h *Handler) browse(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := browseData{Type: q.Get("type"), From: q.Get("from"), To: q.Get("to"), Types: events.BusinessTypes}
	f := events.Filter{Limit: 200}
	if d.Type != "" {
		if !contains(events.BusinessTypes, d.Type) {
			d.Problem = "Choose a business type from the list."
		} else {
			f.BusinessType = d.Type
		}
	}
	if d.From != "" {
		t, err := time.Parse(time.DateOnly, d.From)
		if err != nil {
			d.Problem = "Give the “from” date as a date (YYYY-MM-DD)."
		}
		f.From = t
	}
	if d.To != "" {
		t, err := time.Parse(time.DateOnly, d.To)
		if err != nil {
			d.Problem = "Give the “to” date as a date (YYYY-MM-DD)."
		} else {
			f.To = t.AddDate(0, 0, 1) // the whole day
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		d.Problem = "The “to” date is before the “from” date."
	}
	status := http.StatusOK
	if d.Problem != "" {
		status = http.StatusBadRequest
	} else {
		d.Events = h.d.Catalog.Upcoming(h.d.Now(), f)
	}
	h.pages.Render(w, r, status, "Events", browsePage(d))
}

func (h *Handler) eventPage(w http.ResponseWriter, r *http.Request) {
	h.showEvent(w, r, http.StatusOK, registerForm{})
}

func (h *Handler) showEvent(w http.ResponseWriter, r *http.Request, status int, form registerForm) {
	e, err := h.d.Events.PublicEvent(r.Context(), r.PathValue("id"))
	if errors.Is(err, events.ErrNotFound) {
		h.notFound(w, r)
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "load event", err)
		return
	}
	av, err := h.d.Events.Available(r.Context(), e)
	if err != nil {
		h.pages.Fail(w, r, "seats", err)
		return
	}
	if form.Email == "" {
		form.Email = session.From(r.Context()).Email
	}
	h.pages.Render(w, r, status, e.Title, eventPageView(eventData{Event: e, Avail: av, Now: h.d.Now(), Form: form, ConsentVersion: events.ConsentVersion}))
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	eid := r.PathValue("id")
	form := registerForm{
		Ticket: r.PostFormValue("ticket"), Name: r.PostFormValue("name"), Email: r.PostFormValue("email"),
		Terms: r.PostFormValue("terms") == "yes", DataSharing: r.PostFormValue("data_sharing") == "yes",
	}
	// The inbox limit keys on the normalised address (display names and
	// case stripped), the one a mail would go to; an address that does not
	// parse gets no mail, and Register says what is wrong with it.
	ok, err := h.byClient.Allow(ctx, site.ClientIP(r))
	if email, perr := accounts.NormaliseEmail(form.Email); err == nil && ok && perr == nil {
		ok, err = h.byEmail.Allow(ctx, email)
	}
	if err != nil {
		h.pages.Fail(w, r, "rate limit registration", err)
		return
	}
	if !ok {
		form.Problems = map[string]string{"form": "Too many registrations from here or for this address. Wait a few minutes, then try again."}
		h.showEvent(w, r, http.StatusTooManyRequests, form)
		return
	}
	reg, err := h.d.Events.Register(ctx, eid, events.RegistrationInput{TicketTypeID: form.Ticket, Name: form.Name, Email: form.Email, Terms: form.Terms, DataSharing: form.DataSharing})
	var v *events.ValidationError
	switch {
	case errors.As(err, &v):
		form.Problems = v.Fields
		h.showEvent(w, r, http.StatusUnprocessableEntity, form)
		return
	case errors.Is(err, events.ErrNotFound):
		h.notFound(w, r)
		return
	case err != nil:
		h.pages.Fail(w, r, "register", err)
		return
	}
	// A signed-in person registering their own address has proved it with
	// their session already: confirm at once (a paid ticket goes straight
	// on to Checkout) instead of mailing a link to confirm the same thing.
	if u, ok := session.UserFrom(ctx); ok && strings.EqualFold(u.Email, reg.Email) {
		r.SetPathValue("rid", reg.ID)
		h.confirm(w, r, user{ID: u.ID, Email: u.Email})
		return
	}
	// From here on the registration is saved. A failure below answers 500
	// and is safe to retry: the registration left behind is unconfirmed,
	// holds no seat, is not shown to the organiser, and expires.
	next := "/events/e/" + eid + "/r/" + reg.ID
	token, err := h.d.Accounts.IssueLink(ctx, reg.Email, next)
	if err != nil {
		h.pages.Fail(w, r, "issue registration link", err)
		return
	}
	e, _ := h.d.Events.PublicEvent(ctx, eid)
	link := h.d.BaseURL + "/signin/verify?token=" + url.QueryEscape(token)
	err = mail.Enqueue(ctx, h.d.JS, subjects.Mail{
		ID: "events-register:" + accounts.LinkID(token), To: reg.Email,
		// The title may predate the one-line rule: a line break in a
		// header would make the mail invalid.
		Subject: "Confirm your registration: " + events.OneLine(e.Title),
		Text: "Hello " + reg.Name + ",\n\nOpen this link to confirm your registration for " + e.Title + ":\n\n" + link +
			"\n\nIt works once, for 15 minutes, and signs you in to see your events. If you did not register, ignore this mail.\n",
	})
	if err != nil {
		h.pages.Fail(w, r, "enqueue registration mail", err)
		return
	}
	h.pages.Render(w, r, http.StatusOK, "Check your email", checkMailView(reg.Email, h.d.Outbox))
}

// ---- participant ----

func (h *Handler) registration(w http.ResponseWriter, r *http.Request, u user) {
	reg, e, err := h.d.Events.RegistrationFor(r.Context(), u.Email, r.PathValue("id"), r.PathValue("rid"))
	if errors.Is(err, events.ErrNotFound) {
		h.notFound(w, r)
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "load registration", err)
		return
	}
	h.pages.Render(w, r, http.StatusOK, "Your registration", registrationPage(regData{Reg: reg, Event: e, Notice: r.URL.Query().Get("ok"), Returned: r.URL.Query().Get("paid") != ""}))
}

func (h *Handler) regProblem(w http.ResponseWriter, r *http.Request, u user, status int, problem string) {
	reg, e, err := h.d.Events.RegistrationFor(r.Context(), u.Email, r.PathValue("id"), r.PathValue("rid"))
	if err != nil {
		h.notFound(w, r)
		return
	}
	h.pages.Render(w, r, status, "Your registration", registrationPage(regData{Reg: reg, Event: e, Problem: problem}))
}

func (h *Handler) confirm(w http.ResponseWriter, r *http.Request, u user) {
	ctx := r.Context()
	eid, rid := r.PathValue("id"), r.PathValue("rid")
	reg, err := h.d.Events.Confirm(ctx, u.Email, eid, rid)
	switch {
	case errors.Is(err, events.ErrNotFound):
		h.notFound(w, r)
		return
	case errors.Is(err, events.ErrSoldOut):
		h.regProblem(w, r, u, http.StatusConflict, "Sorry: this ticket sold out before you confirmed.")
		return
	case errors.Is(err, events.ErrEventOver):
		h.regProblem(w, r, u, http.StatusConflict, "This event has already ended.")
		return
	case err != nil:
		h.pages.Fail(w, r, "confirm registration", err)
		return
	}
	self := "/events/e/" + eid + "/r/" + rid
	if reg.Status != events.Pending || !reg.SeatHeld || reg.AmountMinor == 0 {
		if reg.Status == events.Confirmed || reg.Status == events.Paid {
			self += "?ok=confirmed"
		}
		http.Redirect(w, r, self, http.StatusSeeOther)
		return
	}
	// A paid ticket: its seat is held; send the participant to Checkout.
	if reg.CheckoutURL != "" {
		// Its session lives at least as long as the hold: go back to it.
		// (Creating it again would change expires_at, which Stripe refuses
		// under the same idempotency key.)
		http.Redirect(w, r, reg.CheckoutURL, http.StatusSeeOther)
		return
	}
	if h.d.Payments == nil {
		h.regProblem(w, r, u, http.StatusServiceUnavailable, "Payments are not available on this site right now; your seat is held. Try again later.")
		return
	}
	_, e, err := h.d.Events.RegistrationFor(ctx, u.Email, eid, rid)
	if err != nil {
		h.pages.Fail(w, r, "load event", err)
		return
	}
	org, err := h.d.Events.Organiser(ctx, e.OrganiserID)
	if err != nil {
		h.pages.Fail(w, r, "load organiser", err)
		return
	}
	t, _ := e.Ticket(reg.TicketTypeID)
	co, err := h.d.Payments.CreateCheckout(ctx, payments.CheckoutRequest{
		Account: org.StripeAccountID, Reference: eid + "." + rid, Email: reg.Email,
		ProductName: events.OneLine(e.Title + " · " + t.Name), AmountMinor: reg.AmountMinor, Currency: reg.Currency,
		SuccessURL: h.d.BaseURL + self + "?paid=1", CancelURL: h.d.BaseURL + self,
		// One session per registration, even for two clicks at once.
		IdempotencyKey: "jetfleet-checkout-" + rid,
		// The session expires with the hold (at the earliest 30 minutes
		// out, Stripe's minimum); either way the seat is released.
		ExpiresAt: reg.HoldUntil,
	})
	if err != nil {
		h.d.Log.Error("create checkout", "registration", rid, "err", err)
		h.regProblem(w, r, u, http.StatusBadGateway, "We could not reach the payment provider. Your seat is held; try again in a moment.")
		return
	}
	if err := h.d.Events.AttachCheckout(ctx, u.Email, eid, rid, co.ID, co.URL); err != nil {
		h.pages.Fail(w, r, "attach checkout", err)
		return
	}
	http.Redirect(w, r, co.URL, http.StatusSeeOther)
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request, u user) {
	_, err := h.d.Events.Cancel(r.Context(), u.Email, r.PathValue("id"), r.PathValue("rid"))
	switch {
	case errors.Is(err, events.ErrNotFound):
		h.notFound(w, r)
	case errors.Is(err, events.ErrWrongState):
		h.regProblem(w, r, u, http.StatusConflict, "Paid tickets cannot be cancelled here; contact the organiser for a refund.")
	case err != nil:
		h.pages.Fail(w, r, "cancel registration", err)
	default:
		http.Redirect(w, r, "/events/e/"+r.PathValue("id")+"/r/"+r.PathValue("rid")+"?ok=cancelled", http.StatusSeeOther)
	}
}

func (h *Handler) mine(w http.ResponseWriter, r *http.Request, u user) {
	regs, err := h.d.Events.MyRegistrations(r.Context(), u.Email)
	if err != nil {
		h.pages.Fail(w, r, "my registrations", err)
		return
	}
	now := h.d.Now()
	var d mineData
	for _, x := range regs {
		if x.Event.Past(now) {
			d.Past = append(d.Past, x)
		} else {
			d.Upcoming = append(d.Upcoming, x)
		}
	}
	d.Hosting = h.d.Catalog.HostedBy(u.Email, now)
	h.pages.Render(w, r, http.StatusOK, "My events", minePage(d))
}

// ---- Stripe webhook ----

func (h *Handler) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<10))
	if err != nil {
		site.JSONError(w, site.CodeTooLarge, "body too large")
		return
	}
	if h.d.Payments == nil {
		site.JSONError(w, site.CodeUnavailable, "payments are not configured")
		return
	}
	sig := r.Header.Get("Stripe-Signature")
	cc, ok, err := h.d.Payments.ParseWebhook(body, sig)
	if err != nil {
		h.d.Log.Warn("stripe webhook refused", "err", err)
		site.JSONError(w, site.CodeBadRequest, "invalid signature")
		return
	}
	if !ok && h.d.Subscriptions != nil {
		if sub, isSub, err := h.d.Payments.ParseSubscriptionWebhook(body, sig); err != nil || isSub {
			h.subscription(w, r, sub, err)
			return
		}
	}
	eid, rid, _ := strings.Cut(cc.Reference, ".")
	if ok && cc.Expired {
		h.expired(w, r, cc, eid, rid)
		return
	}
	if !ok || !cc.Paid {
		w.WriteHeader(http.StatusOK) // not an event we act on
		return
	}
	changed, err := h.d.Events.MarkPaid(r.Context(), events.Payment{SessionID: cc.SessionID, EventID: eid, RegID: rid, AmountMinor: cc.AmountMinor, Currency: cc.Currency})
	switch {
	case errors.Is(err, events.ErrNotFound), errors.Is(err, events.ErrPaymentMismatch), errors.Is(err, events.ErrWrongState):
		// Retrying cannot fix these: acknowledge, and leave it to an
		// operator (the payment is in Stripe's dashboard).
		h.d.Log.Error("stripe payment not applied", "event", cc.EventID, "session", cc.SessionID, "reference", cc.Reference, "err", err)
		w.WriteHeader(http.StatusOK)
	case err != nil:
		h.d.Log.Error("stripe webhook", "event", cc.EventID, "err", err)
		site.JSONError(w, site.CodeInternal, "try again") // Stripe retries
	default:
		h.d.Log.Info("stripe payment", "event", cc.EventID, "registration", rid, "applied", changed)
		w.WriteHeader(http.StatusOK)
	}
}

// subscription hands a subscription event to its owner; a failure there is
// answered 500 so that Stripe delivers the event again.
func (h *Handler) subscription(w http.ResponseWriter, r *http.Request, ev payments.SubscriptionEvent, parseErr error) {
	if parseErr != nil {
		h.d.Log.Error("stripe subscription event undecodable", "err", parseErr)
		site.JSONError(w, site.CodeBadRequest, "undecodable event")
		return
	}
	if err := h.d.Subscriptions(r.Context(), ev); err != nil {
		h.d.Log.Error("stripe subscription webhook", "event", ev.EventID, "err", err)
		site.JSONError(w, site.CodeInternal, "try again") // Stripe retries
		return
	}
	w.WriteHeader(http.StatusOK)
}

// expired releases the seat held for a Checkout Session that Stripe
// reports expired. Delivered again, it changes nothing.
func (h *Handler) expired(w http.ResponseWriter, r *http.Request, cc payments.CheckoutCompleted, eid, rid string) {
	released, err := h.d.Events.ReleaseHold(r.Context(), events.HoldRelease{EventID: eid, RegID: rid, SessionID: cc.SessionID})
	switch {
	case errors.Is(err, events.ErrNotFound):
		h.d.Log.Warn("stripe expiry for an unknown registration", "event", cc.EventID, "reference", cc.Reference)
		w.WriteHeader(http.StatusOK)
	case err != nil:
		h.d.Log.Error("stripe webhook", "event", cc.EventID, "err", err)
		site.JSONError(w, site.CodeInternal, "try again") // Stripe retries
	default:
		h.d.Log.Info("stripe checkout expired", "event", cc.EventID, "registration", rid, "released", released)
		w.WriteHeader(http.StatusOK)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
