package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web"
)

// secondEventsEdge runs another edge on e's NATS: the same streams and
// buckets, its own process state.
func secondEventsEdge(t *testing.T, e *eventsEdge) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	conn, _ := ch.Database(t)
	h, err := web.New(ctx, web.Config{SessionSecret: []byte(strings.Repeat("s", 32)), BaseURL: e.URL}, web.Deps{
		NATS: e.nc, JS: e.js, ClickHouse: conn, Gatherer: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs
}

// The per-inbox limit on registration mails is one count for every edge,
// keyed on the address the mail would go to: alternating edges or
// dressing the address in display names and capitals buys no more mails.
func TestRegistrationInboxLimitIsSharedByEveryEdgeAndIgnoresDisplayNames(t *testing.T) {
	e := startEventsEdge(t)
	org := newVisitor(t, e.URL)
	signIn(t, e, org, "org@example.com")
	id, ticket := publishFreeEvent(t, e, org, "Shared Limit Meetup")
	other := secondEventsEdge(t, e)
	edges := []*visitor{newVisitor(t, e.URL), newVisitor(t, other.URL)}
	forms := []string{"sam@example.com", "Sam <sam@example.com>", "SAM@EXAMPLE.COM", "\"Sam S\" <Sam@Example.com>", "sam@example.com", "Sam <SAM@example.com>"}
	var codes []int
	for i, addr := range forms {
		v := edges[i%2]
		resp := v.post("/events/e/"+id, "/events/e/"+id+"/register", url.Values{"ticket": {ticket}, "name": {"Sam"}, "email": {addr}, "terms": {"yes"}, "data_sharing": {"yes"}})
		codes = append(codes, resp.StatusCode)
	}
	if want := []int{200, 200, 200, 200, 200, 429}; !slices.Equal(codes, want) {
		t.Fatalf("registrations for one inbox over two edges = %v, want %v", codes, want)
	}
}

// Whoever types an address into the form, the organiser sees that person
// only once they confirmed through the magic link: before, a count.
func TestOrganiserPageDoesNotShowUnconfirmedRegistrations(t *testing.T) {
	e := startEventsEdge(t)
	org := newVisitor(t, e.URL)
	signIn(t, e, org, "org@example.com")
	id, ticket := publishFreeEvent(t, e, org, "Consent Meetup")
	page := "/events/organise/" + id

	mallory := newVisitor(t, e.URL)
	resp := mallory.post("/events/e/"+id, "/events/e/"+id+"/register", url.Values{"ticket": {ticket}, "name": {"Victim Person"}, "email": {"victim@example.com"}, "terms": {"yes"}, "data_sharing": {"yes"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register = %d", resp.StatusCode)
	}
	_, body := org.get(page)
	if strings.Contains(body, "victim@example.com") || strings.Contains(body, "Victim Person") {
		t.Fatal("the organiser sees an unconfirmed registration's name or address")
	}
	if !strings.Contains(body, "1 awaiting confirmation") {
		t.Errorf("the organiser page does not count the unconfirmed registration:\n%s", body)
	}

	// The person confirms through their link: now the organiser sees them.
	victim := newVisitor(t, e.URL)
	landing := followLink(t, e, victim)
	if resp := victim.post(landing, landing+"/confirm", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm = %d", resp.StatusCode)
	}
	if _, body := victim.get(landing); !strings.Contains(body, "You agreed to the terms") {
		t.Error("the registration page does not show the consent given by confirming")
	}
	if _, body := org.get(page); !strings.Contains(body, "victim@example.com") || strings.Contains(body, "awaiting confirmation") {
		t.Error("the organiser does not see the confirmed registration")
	}
}

// A line break in a title would end up in a mail header: the form refuses
// it with a message, and an event stored before that rule still takes
// registrations.
func TestLineBreakInTitleIsRefusedAndAStoredOneDoesNotBreakRegistration(t *testing.T) {
	e := startEventsEdge(t)
	org := newVisitor(t, e.URL)
	signIn(t, e, org, "org@example.com")
	for _, title := range []string{"Hack\rNight", "Hack\nNight", "Hack\r\nBcc: x@example.com"} {
		resp := org.post("/events/organise/new", "/events/organise/new", url.Values{
			"title": {title}, "description": {"x"}, "business_type": {"technology"},
			"start": {time.Now().AddDate(0, 0, 10).Format("2006-01-02") + "T18:00"}, "end": {time.Now().AddDate(0, 0, 10).Format("2006-01-02") + "T22:00"},
			"time_zone": {"Europe/Berlin"}, "capacity": {"50"},
		})
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("title %q = %d, want 422", title, resp.StatusCode)
		}
	}
	_, form := org.get("/events/organise/new")
	resp, err := org.c.PostForm(e.URL+"/events/organise/new", url.Values{"csrf_token": {csrfInput.FindStringSubmatch(form)[1]}, "title": {"Hack\rNight"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "one line") {
		t.Errorf("the refusal does not say why:\n%s", b)
	}
	// An event stored with a carriage return in its title (data from before
	// the rule): registering for it works and queues a one-line subject.
	id, ticket := publishFreeEvent(t, e, org, "Old Title")
	page := "/events/organise/" + id
	if resp := org.post(page, page+"/tickets", url.Values{"ticket_name": {"VIP\r\nBcc: x@example.com"}, "price": {"0"}, "quantity": {"5"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a ticket name with a line break = %d, want 422", resp.StatusCode)
	}
	ctx := testenv.Context(t, 5*time.Second)
	kv, err := e.js.KeyValue(ctx, subjects.EventsCatalogBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, "event."+id)
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(entry.Value(), &ev); err != nil {
		t.Fatal(err)
	}
	ev["title"] = "Old\rTitle"
	raw, _ := json.Marshal(ev)
	if _, err := kv.Put(ctx, "event."+id, raw); err != nil {
		t.Fatal(err)
	}
	p := newVisitor(t, e.URL)
	resp = p.post("/events/e/"+id, "/events/e/"+id+"/register", url.Values{"ticket": {ticket}, "name": {"Pat"}, "email": {"pat@example.com"}, "terms": {"yes"}, "data_sharing": {"yes"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("registration for an event with a stored \\r title = %d, want 200", resp.StatusCode)
	}
	if m := lastMail(t, e.js); m.To != "pat@example.com" || strings.ContainsAny(m.Subject, "\r\n") {
		t.Errorf("registration mail %q to %q", m.Subject, m.To)
	}
	// A participant's name goes into mail too.
	resp = p.post("/events/e/"+id, "/events/e/"+id+"/register", url.Values{"ticket": {ticket}, "name": {"Pat\r\nBcc: x@example.com"}, "email": {"pat2@example.com"}, "terms": {"yes"}, "data_sharing": {"yes"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a name with a line break = %d, want 422", resp.StatusCode)
	}
}

// Every Events route answers a malformed event, registration or ticket id
// with 404 before it reaches a KV key or an ownership check.
func TestMalformedIdsAre404OnEveryEventsRoute(t *testing.T) {
	e := startEventsEdge(t)
	org := newVisitor(t, e.URL)
	signIn(t, e, org, "org@example.com")
	id, _ := publishFreeEvent(t, e, org, "Id Meetup")
	good := "AAAAAAAAAAAAAAAA" // well formed, no such record
	for _, bad := range []string{"abcdefghijklmn.p", "abcdefghijklmno*", "abc", "abcdefghijklmnopq", "%2A", "a%20b"} {
		for _, rt := range []struct{ method, path string }{
			{"GET", "/events/e/" + bad},
			{"POST", "/events/e/" + bad + "/register"},
			{"GET", "/events/e/" + bad + "/r/" + good},
			{"GET", "/events/e/" + id + "/r/" + bad},
			{"POST", "/events/e/" + bad + "/r/" + good + "/confirm"},
			{"POST", "/events/e/" + id + "/r/" + bad + "/confirm"},
			{"POST", "/events/e/" + bad + "/r/" + good + "/cancel"},
			{"POST", "/events/e/" + id + "/r/" + bad + "/cancel"},
			{"GET", "/events/organise/" + bad},
			{"POST", "/events/organise/" + bad + "/edit"},
			{"POST", "/events/organise/" + bad + "/tickets"},
			{"POST", "/events/organise/" + bad + "/tickets/" + good + "/delete"},
			{"POST", "/events/organise/" + id + "/tickets/" + bad + "/delete"},
			{"POST", "/events/organise/" + bad + "/publish"},
		} {
			var code int
			if rt.method == "GET" {
				code, _ = org.get(rt.path)
			} else {
				code = org.post("/events/organise", rt.path, url.Values{"title": {"x"}, "ticket_name": {"x"}, "price": {"0"}, "quantity": {"1"}, "ticket": {good}, "name": {"x"}, "email": {"x@example.com"}, "terms": {"yes"}, "data_sharing": {"yes"}}).StatusCode
			}
			if code != http.StatusNotFound {
				t.Errorf("%s %s = %d, want 404", rt.method, rt.path, code)
			}
		}
	}
}
