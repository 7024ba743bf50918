package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
)

// publishFreeEvent creates and publishes an event with one free ticket and
// returns its id and the ticket's id.
func publishFreeEvent(t *testing.T, e *eventsEdge, org *visitor, title string) (string, string) {
	t.Helper()
	id := createEvent(t, org, title)
	addTicket(t, org, id, "Community", "0")
	page := "/events/organise/" + id
	if resp := org.post(page, page+"/publish", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("publish = %d", resp.StatusCode)
	}
	var ticket string
	testenv.Eventually(t, 5*time.Second, "the event page lists the ticket", func() bool {
		_, body := org.get("/events/e/" + id)
		m := regexp.MustCompile(`name="ticket" value="([^"]+)"[^>]*data-name="Community"`).FindStringSubmatch(body)
		if m != nil {
			ticket = m[1]
		}
		return m != nil
	})
	return id, ticket
}

// A person whose session already proves their address registers in one
// step: no magic link, the registration is confirmed at once.
func TestSignedInParticipantRegistersInOneStep(t *testing.T) {
	e := startEventsEdge(t)
	org := newVisitor(t, e.URL)
	signIn(t, e, org, "org@example.com")
	id, ticket := publishFreeEvent(t, e, org, "One Step Meetup")

	p := newVisitor(t, e.URL)
	signIn(t, e, p, "pat@example.com")
	mailBefore := lastMail(t, e.js).ID
	resp := p.post("/events/e/"+id, "/events/e/"+id+"/register", url.Values{"ticket": {ticket}, "name": {"Pat"}, "email": {"Pat@Example.com"}, "terms": {"yes"}, "data_sharing": {"yes"}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !regPath.MatchString(strings.SplitN(loc, "?", 2)[0]) {
		t.Fatalf("signed-in registration = %d → %q, want a redirect to the registration", resp.StatusCode, loc)
	}
	if _, body := p.get(loc); !strings.Contains(body, `id="reg-status">confirmed<`) {
		t.Fatalf("registration not confirmed at once:\n%s", body)
	}
	if m := lastMail(t, e.js); m.ID == mailBefore || strings.Contains(m.Text, "/signin/verify") || !strings.Contains(m.Subject, "confirmed") {
		t.Errorf("last mail after a one-step registration: %q %q", m.Subject, m.Text)
	}

	// Registering someone else's address still needs their magic link.
	resp = p.post("/events/e/"+id, "/events/e/"+id+"/register", url.Values{"ticket": {ticket}, "name": {"Sam"}, "email": {"sam@example.com"}, "terms": {"yes"}, "data_sharing": {"yes"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("registration for another address = %d, want 200 (check your email)", resp.StatusCode)
	}
	if m := lastMail(t, e.js); m.To != "sam@example.com" || !strings.Contains(m.Text, "/signin/verify") {
		t.Errorf("no magic link for sam: %+v", m)
	}
}

// Connecting Stripe from an event's page brings the organiser back to that
// event, where they were about to publish.
func TestStripeConnectReturnsToTheEventBeingPublished(t *testing.T) {
	e := startEventsEdge(t)
	org := newVisitor(t, e.URL)
	signIn(t, e, org, "org@example.com")
	id := createEvent(t, org, "Paid Workshop")
	addTicket(t, org, id, "Supporter", "15.00")
	page := "/events/organise/" + id

	// The form on the event page carries the event.
	if _, body := org.get(page); !strings.Contains(body, `name="event" value="`+id+`"`) {
		t.Fatal("the Connect Stripe form on the event page does not carry the event")
	}
	resp := org.post(page, "/events/stripe/connect", url.Values{"event": {id}})
	onboarding := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(onboarding, e.stripe.URL+"/connect/onboarding/") {
		t.Fatalf("connect = %d → %q", resp.StatusCode, onboarding)
	}
	r2, err := org.c.PostForm(onboarding, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	back := strings.TrimPrefix(r2.Header.Get("Location"), e.URL)
	r3, err := org.c.Get(e.URL + back)
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if got := r3.Header.Get("Location"); !strings.HasPrefix(got, page+"?") {
		t.Fatalf("after Stripe onboarding the organiser lands on %q, want the event %s", got, page)
	}
	if _, body := org.get(page); !strings.Contains(body, `id="publish"`) {
		t.Error("the event page has no publish button after connecting")
	}
}
