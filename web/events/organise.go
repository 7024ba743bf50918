package events

import (
	"errors"
	"net/http"

	"jetfleet/internal/events"
	"jetfleet/internal/ids"
)

func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request, u user) {
	ctx := r.Context()
	list, err := h.d.Events.OrganiserEvents(ctx, u.ID)
	if err != nil {
		h.pages.Fail(w, r, "organiser events", err)
		return
	}
	org, err := h.d.Events.Organiser(ctx, u.ID)
	if err != nil {
		h.pages.Fail(w, r, "organiser", err)
		return
	}
	d := dashboardData{Organiser: org, StripeAvailable: h.d.Payments != nil, Notice: r.URL.Query().Get("ok")}
	now := h.d.Now()
	for _, e := range list {
		if e.Past(now) {
			d.Past = append(d.Past, e)
		} else {
			d.Current = append(d.Current, e)
		}
	}
	h.pages.Render(w, r, http.StatusOK, "Organise events", dashboardPage(d))
}

func eventInput(r *http.Request) events.EventInput {
	return events.EventInput{
		Title: r.PostFormValue("title"), Description: r.PostFormValue("description"), BusinessType: r.PostFormValue("business_type"),
		Start: r.PostFormValue("start"), End: r.PostFormValue("end"), TimeZone: r.PostFormValue("time_zone"),
		Capacity: r.PostFormValue("capacity"), StreamURL: r.PostFormValue("stream_url"),
	}
}

func (h *Handler) newForm(w http.ResponseWriter, r *http.Request, u user) {
	h.pages.Render(w, r, http.StatusOK, "New event", newEventPage(events.EventInput{TimeZone: "Europe/Berlin", Capacity: "100"}, nil))
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, u user) {
	in := eventInput(r)
	e, err := h.d.Events.CreateEvent(r.Context(), u.ID, in)
	var v *events.ValidationError
	if errors.As(err, &v) {
		h.pages.Render(w, r, http.StatusUnprocessableEntity, "New event", newEventPage(in, v.Fields))
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "create event", err)
		return
	}
	http.Redirect(w, r, "/events/organise/"+e.ID+"?ok=created", http.StatusSeeOther)
}

// manageData loads what the manage page shows; ok false has answered.
func (h *Handler) manageData(w http.ResponseWriter, r *http.Request, u user) (manageData, bool) {
	ctx := r.Context()
	e, err := h.d.Events.EventFor(ctx, u.ID, r.PathValue("id"))
	if errors.Is(err, events.ErrNotFound) {
		h.notFound(w, r)
		return manageData{}, false
	}
	if err != nil {
		h.pages.Fail(w, r, "load event", err)
		return manageData{}, false
	}
	d := manageData{Event: e, Input: events.InputOf(e), Ticket: events.TicketInput{Price: "0", Quantity: "50", Currency: "eur"}}
	if d.Avail, err = h.d.Events.Available(ctx, e); err != nil {
		h.pages.Fail(w, r, "seats", err)
		return manageData{}, false
	}
	if d.Roster, err = h.d.Events.EventRegistrations(ctx, u.ID, e.ID); err != nil {
		h.pages.Fail(w, r, "registrations", err)
		return manageData{}, false
	}
	if d.Organiser, err = h.d.Events.Organiser(ctx, u.ID); err != nil {
		h.pages.Fail(w, r, "organiser", err)
		return manageData{}, false
	}
	d.StripeAvailable = h.d.Payments != nil
	return d, true
}

func (h *Handler) manage(w http.ResponseWriter, r *http.Request, u user) {
	d, ok := h.manageData(w, r, u)
	if !ok {
		return
	}
	d.Notice = r.URL.Query().Get("ok")
	h.pages.Render(w, r, http.StatusOK, d.Event.Title, managePage(d))
}

func (h *Handler) edit(w http.ResponseWriter, r *http.Request, u user) {
	in := eventInput(r)
	_, err := h.d.Events.UpdateEvent(r.Context(), u.ID, r.PathValue("id"), in)
	h.afterChange(w, r, u, err, "saved", func(d *manageData, fields map[string]string) {
		d.Input, d.EventProblems = in, fields
	})
}

func (h *Handler) addTicket(w http.ResponseWriter, r *http.Request, u user) {
	in := events.TicketInput{
		Name: r.PostFormValue("ticket_name"), Price: r.PostFormValue("price"), Currency: r.PostFormValue("currency"),
		Quantity: r.PostFormValue("quantity"), SaleStart: r.PostFormValue("sale_start"), SaleEnd: r.PostFormValue("sale_end"),
	}
	_, err := h.d.Events.AddTicketType(r.Context(), u.ID, r.PathValue("id"), in)
	h.afterChange(w, r, u, err, "ticket-added", func(d *manageData, fields map[string]string) {
		d.Ticket, d.TicketProblems = in, fields
	})
}

func (h *Handler) removeTicket(w http.ResponseWriter, r *http.Request, u user) {
	_, err := h.d.Events.RemoveTicketType(r.Context(), u.ID, r.PathValue("id"), r.PathValue("tid"))
	if errors.Is(err, events.ErrNotFound) {
		// The ticket type is gone already (a double click): nothing to do.
		if _, eerr := h.d.Events.EventFor(r.Context(), u.ID, r.PathValue("id")); eerr == nil {
			err = nil
		}
	}
	h.afterChange(w, r, u, err, "ticket-removed", nil)
}

func (h *Handler) addHost(w http.ResponseWriter, r *http.Request, u user) {
	email := r.PostFormValue("host_email")
	_, err := h.d.Events.AddHost(r.Context(), u.ID, r.PathValue("id"), email)
	h.afterChange(w, r, u, err, "host-added", func(d *manageData, fields map[string]string) {
		d.HostEmail, d.HostProblems = email, fields
	})
}

func (h *Handler) removeHost(w http.ResponseWriter, r *http.Request, u user) {
	_, err := h.d.Events.RemoveHost(r.Context(), u.ID, r.PathValue("id"), r.PostFormValue("host_email"))
	h.afterChange(w, r, u, err, "host-removed", nil)
}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request, u user) {
	_, err := h.d.Events.Publish(r.Context(), u.ID, r.PathValue("id"))
	h.afterChange(w, r, u, err, "published", nil)
}

// afterChange redirects back to the manage page after a change, or shows
// it again with the problem: field messages through onInvalid, rule
// violations (sold tickets, Stripe missing…) at the top.
func (h *Handler) afterChange(w http.ResponseWriter, r *http.Request, u user, err error, ok string, onInvalid func(d *manageData, fields map[string]string)) {
	if err == nil {
		http.Redirect(w, r, "/events/organise/"+r.PathValue("id")+"?ok="+ok, http.StatusSeeOther)
		return
	}
	if errors.Is(err, events.ErrNotFound) {
		h.notFound(w, r)
		return
	}
	var v *events.ValidationError
	rule := errors.Is(err, events.ErrStripeRequired) || errors.Is(err, events.ErrNoTickets) || errors.Is(err, events.ErrAlreadyLive) ||
		errors.Is(err, events.ErrTicketsSold) || errors.Is(err, events.ErrEventOver)
	if !errors.As(err, &v) && !rule {
		h.pages.Fail(w, r, "change event", err)
		return
	}
	d, loaded := h.manageData(w, r, u)
	if !loaded {
		return
	}
	if v != nil && onInvalid != nil {
		onInvalid(&d, v.Fields)
	} else {
		d.Problem = err.Error()
	}
	h.pages.Render(w, r, http.StatusUnprocessableEntity, d.Event.Title, managePage(d))
}

// ---- Stripe Connect ----

func (h *Handler) connect(w http.ResponseWriter, r *http.Request, u user) {
	ctx := r.Context()
	if h.d.Payments == nil {
		http.Error(w, "Stripe is not configured on this site (STRIPE_SECRET_KEY).", http.StatusServiceUnavailable)
		return
	}
	org, err := h.d.Events.Organiser(ctx, u.ID)
	if err != nil {
		h.pages.Fail(w, r, "organiser", err)
		return
	}
	if org.StripeAccountID == "" {
		acct, err := h.d.Payments.CreateExpressAccount(ctx, u.Email)
		if err != nil {
			h.d.Log.Error("create stripe account", "user", u.ID, "err", err)
			http.Error(w, "We could not reach Stripe. Try again in a moment.", http.StatusBadGateway)
			return
		}
		if org, err = h.d.Events.SetStripeAccount(ctx, u.ID, u.Email, acct, false); err != nil {
			h.pages.Fail(w, r, "save stripe account", err)
			return
		}
	}
	h.redirectToOnboarding(w, r, org.StripeAccountID, r.PostFormValue("event"))
}

// returnQuery carries the event the organiser was publishing through
// Stripe's onboarding, so they come back to it; anything that is not an
// event id is dropped.
func returnQuery(eid string) string {
	if !ids.Valid(eid) {
		return ""
	}
	return "?event=" + eid
}

func (h *Handler) redirectToOnboarding(w http.ResponseWriter, r *http.Request, acct, eid string) {
	q := returnQuery(eid)
	link, err := h.d.Payments.OnboardingLink(r.Context(), acct, h.d.BaseURL+"/events/stripe/refresh"+q, h.d.BaseURL+"/events/stripe/return"+q)
	if err != nil {
		h.d.Log.Error("stripe account link", "account", acct, "err", err)
		http.Error(w, "We could not reach Stripe. Try again in a moment.", http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, link, http.StatusSeeOther)
}

func (h *Handler) stripeReturn(w http.ResponseWriter, r *http.Request, u user) {
	ctx := r.Context()
	org, err := h.d.Events.Organiser(ctx, u.ID)
	if err != nil {
		h.pages.Fail(w, r, "organiser", err)
		return
	}
	if h.d.Payments == nil || org.StripeAccountID == "" {
		http.Redirect(w, r, "/events/organise", http.StatusSeeOther)
		return
	}
	ready, err := h.d.Payments.AccountReady(ctx, org.StripeAccountID)
	if err != nil {
		h.d.Log.Error("stripe account status", "account", org.StripeAccountID, "err", err)
		http.Error(w, "We could not reach Stripe. Try again in a moment.", http.StatusBadGateway)
		return
	}
	if _, err := h.d.Events.SetStripeAccount(ctx, u.ID, u.Email, org.StripeAccountID, ready); err != nil {
		h.pages.Fail(w, r, "save stripe account", err)
		return
	}
	ok := "stripe-pending"
	if ready {
		ok = "stripe-connected"
	}
	back := "/events/organise"
	if eid := r.URL.Query().Get("event"); ids.Valid(eid) {
		back += "/" + eid
	}
	http.Redirect(w, r, back+"?ok="+ok, http.StatusSeeOther)
}

func (h *Handler) stripeRefresh(w http.ResponseWriter, r *http.Request, u user) {
	org, err := h.d.Events.Organiser(r.Context(), u.ID)
	if err != nil || org.StripeAccountID == "" || h.d.Payments == nil {
		http.Redirect(w, r, "/events/organise", http.StatusSeeOther)
		return
	}
	h.redirectToOnboarding(w, r, org.StripeAccountID, r.URL.Query().Get("event"))
}
