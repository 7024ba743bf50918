package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"jetfleet/internal/crm"
	"jetfleet/internal/crm/hubspot"
	"jetfleet/internal/crm/hubspot/hubspottest"
	"jetfleet/internal/sealed"
	"jetfleet/subjects"
	"jetfleet/web"
	"jetfleet/web/eventexports"
	"jetfleet/web/session"
)

// startExportsEdge runs an edge with TOKEN_KEY set (free tickets only),
// checking HubSpot tokens with a HubSpot stand-in.
func startExportsEdge(t *testing.T) *eventsEdge {
	t.Helper()
	hs, err := hubspottest.Start(hubspottest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	return startExportsEdgeWith(t, hs.URL)
}

// startExportsEdgeWith is startExportsEdge checking HubSpot tokens at
// hubspotBase.
func startExportsEdgeWith(t *testing.T, hubspotBase string) *eventsEdge {
	t.Helper()
	box, err := sealed.New([]byte(strings.Repeat("t", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return startEventsEdgeWith(t, eventsEdgeSetup{deps: func(d *web.Deps) {
		d.Tokens = box
		d.HubSpot = hubspot.New(hubspot.Config{BaseURL: hubspotBase})
	}})
}

// A token is checked with HubSpot before it is kept: one HubSpot refuses,
// one without the contacts-write scope, and one that could not be checked
// are each said next to the field, and nothing is stored.
func TestHubSpotTokenIsVerifiedBeforeItIsStored(t *testing.T) {
	underScoped, err := hubspottest.Start(hubspottest.Config{Scopes: []string{"crm.objects.contacts.read"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { underScoped.Close() })
	down, err := hubspottest.Start(hubspottest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	downURL := down.URL
	down.Close() // nothing listens there any more

	cases := []struct {
		name, base, token string
		status            int
		says              string
	}{
		{"refused", "", "pat-na1-11111111-2222-3333-4444-555555555555", http.StatusUnprocessableEntity, "HubSpot does not accept this token"},
		{"under-scoped", underScoped.URL, hubspottest.DefaultToken, http.StatusUnprocessableEntity, "lacks the crm.objects.contacts.write scope"},
		{"unreachable", downURL, hubspottest.DefaultToken, http.StatusBadGateway, "Couldn&#39;t reach HubSpot"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e *eventsEdge
			if c.base == "" {
				e = startExportsEdge(t)
			} else {
				e = startExportsEdgeWith(t, c.base)
			}
			alice := newVisitor(t, e.URL)
			signIn(t, e, alice, "alice@example.com")
			_, page := alice.get("/events/integrations")
			m := csrfInput.FindStringSubmatch(page)
			if m == nil {
				t.Fatal("no CSRF field on the integrations page")
			}
			resp, err := alice.c.PostForm(e.URL+"/events/integrations/hubspot", url.Values{"hubspot_token": {c.token}, session.FormField: {m[1]}})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || !strings.Contains(string(body), c.says) || !strings.Contains(string(body), "Nothing was saved") {
				t.Fatalf("save = %d, want %d saying %q:\n%s", resp.StatusCode, c.status, c.says, body)
			}
			kv, err := e.js.KeyValue(context.Background(), subjects.EventsCRMBucket)
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := kv.Status(context.Background()); st.Values() != 0 {
				t.Fatalf("%d values stored after a token that was not verified", st.Values())
			}
		})
	}
}

func TestOnlyTheEventsAdminsReachItsExports(t *testing.T) {
	e := startExportsEdge(t)
	alice, bob := newVisitor(t, e.URL), newVisitor(t, e.URL)
	signIn(t, e, alice, "alice@example.com")
	signIn(t, e, bob, "bob@example.com")
	id := createEvent(t, alice, "Alice's hack night")
	exports := "/events/organise/" + id + "/exports"

	if code, page := alice.get(exports); code != http.StatusOK || !strings.Contains(page, "Download the CSV") {
		t.Fatalf("alice's exports page = %d", code)
	}
	resp, err := alice.c.Get(e.URL + exports + "/participants.csv")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") || string(body) != "name,email,ticket,status,registered_at,consent_version\n" {
		t.Fatalf("alice's CSV = %d %q %q", resp.StatusCode, resp.Header, body)
	}
	for _, path := range []string{exports, exports + "/participants.csv"} {
		if code, _ := bob.get(path); code != http.StatusNotFound {
			t.Errorf("bob GET %s = %d, want 404", path, code)
		}
	}
	for _, target := range []string{"csv", "hubspot", "salesforce"} {
		if resp := bob.post("/events/organise", exports+"/"+target, url.Values{}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("bob POST %s = %d, want 404", target, resp.StatusCode)
		}
	}
	if code, _ := newVisitor(t, e.URL).get(exports + "/participants.csv"); code != http.StatusSeeOther {
		t.Errorf("anonymous CSV = %d, want a redirect to sign in", code)
	}
	// Exporting into a CRM the organiser never connected says so.
	if resp := alice.post(exports, exports+"/hubspot", url.Values{}); resp.StatusCode != http.StatusConflict {
		t.Errorf("export to an unconnected HubSpot = %d, want 409", resp.StatusCode)
	}
	// Mailing the CSV queues a job for the events-export role.
	if resp := alice.post(exports, exports+"/csv", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("mail CSV = %d", resp.StatusCode)
	}
	st, err := e.js.Stream(context.Background(), subjects.EventsExportsStream)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.GetLastMsgForSubject(context.Background(), subjects.EventsExportSubject(id, "csv")); err != nil || !strings.Contains(string(m.Data), `"mail_to":"alice@example.com"`) {
		t.Fatalf("queued CSV job: %v", err)
	}
}

func TestHubSpotTokenIsSealedAtRestNeverShownAndDisconnectDeletesIt(t *testing.T) {
	e := startExportsEdge(t)
	alice := newVisitor(t, e.URL)
	signIn(t, e, alice, "alice@example.com")
	if resp := alice.post("/events/integrations", "/events/integrations/hubspot", url.Values{"hubspot_token": {"secret token"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("malformed token = %d, want 422", resp.StatusCode)
	}
	token := hubspottest.DefaultToken
	if resp := alice.post("/events/integrations", "/events/integrations/hubspot", url.Values{"hubspot_token": {token}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save token = %d", resp.StatusCode)
	}
	if _, page := alice.get("/events/integrations"); strings.Contains(page, token) || !strings.Contains(page, "disconnect-hubspot") {
		t.Fatal("the integrations page shows the token, or not the connection")
	}
	kv, err := e.js.KeyValue(context.Background(), subjects.EventsCRMBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for k := range keys.Keys() {
		n++
		v, err := kv.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(v.Value()), token) || strings.Contains(string(v.Value()), "pat-na1") {
			t.Fatalf("KV %s holds the token in clear: %s", k, v.Value())
		}
		if !strings.HasPrefix(k, crm.HubSpot+".") {
			t.Errorf("unexpected key %s", k)
		}
	}
	if n != 1 {
		t.Fatalf("%d keys in %s, want 1", n, subjects.EventsCRMBucket)
	}
	if resp := alice.post("/events/integrations", "/events/integrations/hubspot/disconnect", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disconnect = %d", resp.StatusCode)
	}
	if _, page := alice.get("/events/integrations"); strings.Contains(page, "disconnect-hubspot") {
		t.Fatal("still connected after disconnecting")
	}
	if st, _ := kv.Status(context.Background()); st.Values() != 0 {
		t.Fatalf("%d values left in the bucket after disconnecting", st.Values())
	}
}

// Every export request queues a whole run (a mail with the CSV, or a push
// of every contact into the organiser's CRM, spending its API limits), and
// any host of the event may ask: the requests of one event and target are
// limited, on every edge together, and past it the page says so.
func TestExportRequestsOfAnEventAreLimited(t *testing.T) {
	e := startExportsEdge(t)
	alice := newVisitor(t, e.URL)
	signIn(t, e, alice, "alice@example.com")
	id := createEvent(t, alice, "Alice's hack night")
	exports := "/events/organise/" + id + "/exports"
	for i := range eventexports.ExportsPerHour {
		if resp := alice.post(exports, exports+"/csv", url.Values{}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("export %d = %d, want a redirect", i+1, resp.StatusCode)
		}
	}
	resp := alice.post(exports, exports+"/csv", url.Values{})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("export past the limit = %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
