package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"jetfleet/internal/eventpost"
	"jetfleet/internal/payments/stripetest"
	"jetfleet/web"
)

// startAnalyticsEdge is startEventsEdge with the analytics tables migrated.
func startAnalyticsEdge(t *testing.T) *eventsEdge {
	t.Helper()
	return startEventsEdgeWith(t, eventsEdgeSetup{stripe: true, analytics: true, config: func(c *web.Config) { c.EventsFees = eventpost.DefaultPrices }})
}

func TestAnalyticsPageIsForTheEventsAdminsOnly(t *testing.T) {
	e := startAnalyticsEdge(t)
	alice := newVisitor(t, e.URL)
	signIn(t, e, alice, "alice@example.com")
	id := createEvent(t, alice, "Go Hack Night")
	addTicket(t, alice, id, "General", "0")
	if resp := alice.post("/events/organise/"+id, "/events/organise/"+id+"/publish", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("publish = %d", resp.StatusCode)
	}
	_, manage := alice.get("/events/organise/" + id)
	if !strings.Contains(manage, `/events/organise/`+id+`/analytics`) {
		t.Fatal("the organiser's event page does not link its analytics")
	}
	code, page := alice.get("/events/organise/" + id + "/analytics")
	for _, want := range []string{"Live figures, computed now", "final figures are accumulated on", `id="fig-registrations">0<`, "Registered participants", "No card is saved", "Platform fee"} {
		if code != http.StatusOK || !strings.Contains(page, want) {
			t.Fatalf("analytics page = %d, lacks %q:\n%s", code, want, page)
		}
	}
	bob := newVisitor(t, e.URL)
	signIn(t, e, bob, "bob@example.com")
	if code, _ := bob.get("/events/organise/" + id + "/analytics"); code != http.StatusNotFound {
		t.Fatalf("another user's view of the analytics = %d, want 404", code)
	}
	if code, _ := newVisitor(t, e.URL).get("/events/organise/" + id + "/analytics"); code != http.StatusSeeOther {
		t.Fatalf("a signed-out view = %d, want a redirect to sign in", code)
	}
	if code, _ := alice.get("/events/organise/not..an..id/analytics"); code != http.StatusNotFound {
		t.Fatalf("a malformed id = %d, want 404", code)
	}
}

func TestOrganiserSavesAFeeCardThroughAStripeSetupSession(t *testing.T) {
	e := startAnalyticsEdge(t)
	alice := newVisitor(t, e.URL)
	signIn(t, e, alice, "alice@example.com")
	resp := alice.post("/events/organise/fees", "/events/organise/fees/card", url.Values{})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, e.stripe.URL+"/pay/cs_test_") {
		t.Fatalf("save card = %d → %q, want Stripe's setup page", resp.StatusCode, loc)
	}
	session := strings.TrimPrefix(loc, e.stripe.URL+"/pay/")
	back, err := e.stripe.CompleteSetup(context.Background(), session, stripetest.CardSucceeds)
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(back, e.URL)
	// Someone else coming back with alice's session gets nothing of it.
	bob := newVisitor(t, e.URL)
	signIn(t, e, bob, "bob@example.com")
	bob.post("/events/organise/fees", "/events/organise/fees/card", url.Values{})
	if code, _ := bob.get(path); code != http.StatusNotFound {
		t.Fatalf("bob returning with alice's setup session = %d, want 404", code)
	}
	if code, _ := alice.get(path); code != http.StatusSeeOther {
		t.Fatalf("return from Stripe = %d", code)
	}
	_, page := alice.get("/events/organise/fees")
	if !strings.Contains(page, "A card is saved for platform fees") || !strings.Contains(page, "The first 50 registered participants") {
		t.Fatalf("fees page after saving:\n%s", page)
	}
	_, page = bob.get("/events/organise/fees")
	if !strings.Contains(page, "No card is saved") {
		t.Fatal("bob's fees page shows a card he never saved")
	}
}

// The return from Stripe goes back to the page the card was asked from,
// named in the link's back parameter. Anyone can make such a link with
// a setup session of their own that they left incomplete (answered before
// any check of whose it is), so back must only ever name one of our pages:
// a tab or a backslash that browsers drop or turn into a slash would make
// "/<tab>/evil.example" a link to another site.
func TestCardReturnNeverRedirectsOffSite(t *testing.T) {
	e := startAnalyticsEdge(t)
	mallory := newVisitor(t, e.URL)
	signIn(t, e, mallory, "mallory@example.com")
	resp := mallory.post("/events/organise/fees", "/events/organise/fees/card", url.Values{})
	session := strings.TrimPrefix(resp.Header.Get("Location"), e.stripe.URL+"/pay/")
	alice := newVisitor(t, e.URL)
	signIn(t, e, alice, "alice@example.com")
	for _, back := range []string{"/\t/evil.example", "/\n/evil.example", "/\\evil.example", "//evil.example", "https://evil.example", "/events/organise/../../x", "/tracker"} {
		req, _ := http.NewRequest(http.MethodGet, e.URL+"/events/organise/fees/card/return?session_id="+url.QueryEscape(session)+"&back="+url.QueryEscape(back), nil)
		for _, c := range alice.c.Jar.Cookies(req.URL) {
			req.AddCookie(c)
		}
		// The transport, not the client: the client refuses to parse a
		// Location with a control character before anyone sees it.
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/events/organise/fees?") {
			t.Errorf("back=%q: %d → %q, want the fees page", back, resp.StatusCode, loc)
		}
	}
}
