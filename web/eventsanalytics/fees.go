package eventsanalytics

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"jetfleet/internal/eventpost"
	"jetfleet/internal/ids"
	"jetfleet/internal/payments"
	"jetfleet/web/session"
)

// fees shows the organiser's fee card, the price table and the fee of
// each of their events.
func (h *Handler) fees(w http.ResponseWriter, r *http.Request) {
	u, _ := session.UserFrom(r.Context())
	ctx := r.Context()
	org, err := h.d.Events.Organiser(ctx, u.ID)
	if err != nil {
		h.pages.Fail(w, r, "organiser", err)
		return
	}
	list, err := h.d.Events.OrganiserEvents(ctx, u.ID)
	if err != nil {
		h.pages.Fail(w, r, "organiser events", err)
		return
	}
	d := feesData{Card: org, CardAvailable: h.d.Payments != nil, Prices: h.d.Prices, Notice: r.URL.Query().Get("ok")}
	for _, e := range list {
		row := feeRow{Event: e}
		if f, _, err := h.d.Store.Fee(ctx, e.ID); err == nil {
			row.Fee = &f
		} else if !errors.Is(err, eventpost.ErrNotFound) {
			h.pages.Fail(w, r, "fee record", err)
			return
		}
		d.Rows = append(d.Rows, row)
	}
	sort.SliceStable(d.Rows, func(i, j int) bool { return d.Rows[i].Event.End.After(d.Rows[j].Event.End) })
	h.pages.Render(w, r, http.StatusOK, "Platform fees", feesPage(d))
}

// saveCard sends the organiser to Stripe to save a card for fees: a
// customer of the platform (made once) and a Checkout Session in setup
// mode, whose SetupIntent allows off-session charges.
func (h *Handler) saveCard(w http.ResponseWriter, r *http.Request) {
	if h.d.Payments == nil {
		http.Error(w, "Stripe is not configured on this site.", http.StatusServiceUnavailable)
		return
	}
	u, _ := session.UserFrom(r.Context())
	ctx := r.Context()
	org, err := h.d.Events.Organiser(ctx, u.ID)
	if err != nil {
		h.pages.Fail(w, r, "organiser", err)
		return
	}
	cus := org.FeeCustomerID
	if cus == "" {
		// One customer per organiser however often they click.
		if cus, err = h.d.Payments.CreateCustomer(ctx, u.Email, u.ID, "jetfleet-fee-customer-"+u.ID); err != nil {
			h.stripeDown(w, err)
			return
		}
		if _, err := h.d.Events.SetFeePaymentMethod(ctx, u.ID, cus, org.FeePaymentMethod); err != nil {
			h.pages.Fail(w, r, "save customer", err)
			return
		}
	}
	back := cardBack(r.PostFormValue("event"))
	co, err := h.d.Payments.CreateSetupCheckout(ctx, payments.SetupRequest{
		Customer: cus, Currency: h.d.Prices.Currency,
		SuccessURL: h.d.BaseURL + "/events/organise/fees/card/return?session_id={CHECKOUT_SESSION_ID}&back=" + url.QueryEscape(back),
		CancelURL:  h.d.BaseURL + back,
	})
	if err != nil {
		h.stripeDown(w, err)
		return
	}
	http.Redirect(w, r, co.URL, http.StatusSeeOther)
}

// feesPath is the fees page, where a card is asked for and saved.
const feesPath = "/events/organise/fees"

// cardBack is where the return from Stripe goes: event eid's analytics
// page when the card was asked for there, the fees page otherwise.
func cardBack(eid string) string {
	if ids.Valid(eid) {
		return "/events/organise/" + eid + "/analytics"
	}
	return feesPath
}

// cardBackFrom reads back a return link's back parameter: only the pages
// cardBack names. Anyone can send a signed-in organiser a return link
// (with a setup session of their own left incomplete), so a prefix check
// is not enough: browsers drop tabs and line breaks and read a backslash
// as a slash, making "/<tab>/evil.example" another site.
func cardBackFrom(back string) string {
	if eid, ok := strings.CutPrefix(back, "/events/organise/"); ok {
		if eid, ok := strings.CutSuffix(eid, "/analytics"); ok {
			return cardBack(eid)
		}
	}
	return feesPath
}

func (h *Handler) stripeDown(w http.ResponseWriter, err error) {
	h.d.Log.Error("stripe fee card", "err", err)
	http.Error(w, "We could not reach Stripe. Try again in a moment.", http.StatusBadGateway)
}

// cardReturn records the card Stripe saved, when the organiser comes back.
func (h *Handler) cardReturn(w http.ResponseWriter, r *http.Request) {
	if h.d.Payments == nil {
		http.Redirect(w, r, "/events/organise/fees", http.StatusSeeOther)
		return
	}
	u, _ := session.UserFrom(r.Context())
	ctx := r.Context()
	back := cardBackFrom(r.URL.Query().Get("back"))
	org, err := h.d.Events.Organiser(ctx, u.ID)
	if err != nil {
		h.pages.Fail(w, r, "organiser", err)
		return
	}
	res, err := h.d.Payments.SetupOutcome(ctx, r.URL.Query().Get("session_id"))
	switch {
	case errors.Is(err, payments.ErrSetupIncomplete):
		http.Redirect(w, r, back+"?ok=card-incomplete", http.StatusSeeOther)
		return
	case err != nil:
		h.stripeDown(w, err)
		return
	case res.Customer != org.FeeCustomerID:
		// Someone else's session: never attach another customer's card.
		h.notFound(w, r)
		return
	}
	if _, err := h.d.Events.SetFeePaymentMethod(ctx, u.ID, res.Customer, res.PaymentMethod); err != nil {
		h.pages.Fail(w, r, "save card", err)
		return
	}
	http.Redirect(w, r, back+"?ok=card-saved", http.StatusSeeOther)
}
