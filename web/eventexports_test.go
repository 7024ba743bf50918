package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"jetfleet/internal/crm"
	"jetfleet/internal/crm/hubspot/hubspottest"
	"jetfleet/internal/sealed"
	"jetfleet/subjects"
	"jetfleet/web"
	"jetfleet/web/eventexports"
)

// startExportsEdge runs an edge with TOKEN_KEY set (free tickets only).
func startExportsEdge(t *testing.T) *eventsEdge {
	t.Helper()
	box, err := sealed.New([]byte(strings.Repeat("t", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return startEventsEdgeWith(t, eventsEdgeSetup{deps: func(d *web.Deps) { d.Tokens = box }})
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
