package salesforce_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"jetfleet/internal/crm"
	"jetfleet/internal/crm/crmtest"
	"jetfleet/internal/crm/salesforce"
	"jetfleet/internal/crm/salesforce/salesforcetest"
	"jetfleet/internal/jsonshape"
)

// fake serves golden token and upsert answers, recording the upsert body.
func fake(t *testing.T, upsertStatus int, upsertFile string, body *[]byte) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/services/oauth2/token":
			b := string(crmtest.Golden(t, "salesforce_token_refresh.json"))
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, strings.ReplaceAll(b, "https://yourInstance.my.salesforce.com", "http://"+r.Host))
		case r.Method == http.MethodPatch && r.URL.Path == "/services/data/v62.0/composite/sobjects/Contact/Jetfleet_Email__c":
			*body, _ = io.ReadAll(r.Body)
			w.WriteHeader(upsertStatus)
			w.Write(crmtest.Golden(t, upsertFile))
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
			w.WriteHeader(404)
		}
	}))
}

func TestClientSendsTheDocumentedCollectionUpsertAndReadsEachRecord(t *testing.T) {
	var body []byte
	srv := fake(t, 200, "salesforce_upsert_200.json", &body)
	defer srv.Close()
	c := salesforce.New(salesforce.Config{LoginURL: srv.URL, ClientID: "id", ClientSecret: "s"})
	res, err := c.Session(salesforce.Connection{RefreshToken: "rt", InstanceURL: srv.URL}).UpsertContacts(context.Background(), crmtest.Contacts())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonshape.Of(t, body), jsonshape.Of(t, crmtest.Golden(t, "salesforce_upsert_request.json")); !slices.Equal(got, want) {
		t.Fatalf("request shape %v, golden %v", got, want)
	}
	if res.Upserted["ada@example.com"] != "003xx000004TmiQAAS" || res.Created != 1 || len(res.Failed) != 1 ||
		res.Failed[0].Email != "not-an-address" || !strings.HasPrefix(res.Failed[0].Message, "INVALID_EMAIL_ADDRESS: ") {
		t.Fatalf("result = %+v", res)
	}
}

func TestRequestLimitExceededIsARateLimit(t *testing.T) {
	var body []byte
	srv := fake(t, 403, "salesforce_403_limit.json", &body)
	defer srv.Close()
	c := salesforce.New(salesforce.Config{LoginURL: srv.URL, ClientID: "id", ClientSecret: "s"})
	_, err := c.Session(salesforce.Connection{RefreshToken: "rt", InstanceURL: srv.URL}).UpsertContacts(context.Background(), crmtest.Contacts())
	var rl *crm.RateLimitError
	if !errors.As(err, &rl) || !strings.Contains(rl.Message, "REQUEST_LIMIT_EXCEEDED") {
		t.Fatalf("error %v, want a rate limit", err)
	}
}

// consent goes through the stand-in's consent page and returns the code it
// redirects back with.
func consent(t *testing.T, c *salesforce.Client, verifier string) string {
	t.Helper()
	u, _ := url.Parse(c.AuthCodeURL("st", verifier))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(u.String(), url.Values{"q": {u.RawQuery}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	if back.Query().Get("state") != "st" || !strings.HasPrefix(resp.Header.Get("Location"), "http://site/cb?") {
		t.Fatalf("redirect %q", resp.Header.Get("Location"))
	}
	return back.Query().Get("code")
}

// Salesforce requires a Contact's LastName: a participant without a name
// is sent with the documented stand-in and reported, never dropped.
func TestBlankNameIsSentWithTheFallbackLastNameAndReported(t *testing.T) {
	s, err := salesforcetest.Start(salesforcetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := salesforce.New(salesforce.Config{LoginURL: s.URL, ClientID: s.ClientID(), ClientSecret: s.ClientSecret(), RedirectURL: "http://site/cb"})
	verifier := strings.Repeat("v", 43)
	conn, err := c.Exchange(context.Background(), consent(t, c, verifier), verifier)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Session(conn).UpsertContacts(context.Background(), []crm.Contact{
		{Email: "Grace.H@example.com", FirstName: "", LastName: "  "},
		{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Upserted) != 2 || len(res.Failed) != 0 || !slices.Equal(res.NameFilled, []string{"grace.h@example.com"}) {
		t.Fatalf("result = %+v, want both upserted and grace reported as name-filled", res)
	}
	var last []any
	for _, ct := range s.Contacts() {
		last = append(last, ct.Fields["LastName"])
	}
	if !slices.Contains(last, any("Grace.H")) {
		t.Fatalf("Salesforce holds last names %v, want the blank one as the email's local part", last)
	}
	if got := salesforce.FallbackLastName("@example.com"); got != "Unknown" {
		t.Fatalf("FallbackLastName of an empty local part = %q", got)
	}
}

func TestStandInWebServerFlowWithPKCEAndRevokedRefreshToken(t *testing.T) {
	s, err := salesforcetest.Start(salesforcetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := salesforce.New(salesforce.Config{LoginURL: s.URL, ClientID: s.ClientID(), ClientSecret: s.ClientSecret(), RedirectURL: "http://site/cb"})
	code := func(verifier string) string { return consent(t, c, verifier) }
	verifier := strings.Repeat("v", 43)
	// A code redeemed with another verifier (a stolen code) is refused.
	if _, err := c.Exchange(context.Background(), code(verifier), strings.Repeat("w", 43)); err == nil {
		t.Fatal("exchange with the wrong PKCE verifier succeeded")
	}
	conn, err := c.Exchange(context.Background(), code(verifier), verifier)
	if err != nil {
		t.Fatal(err)
	}
	if conn.RefreshToken == "" || conn.InstanceURL != s.URL {
		t.Fatalf("connection %+v", conn)
	}
	sess := c.Session(conn)
	if res, err := sess.UpsertContacts(context.Background(), crmtest.Contacts()); err != nil || len(res.Upserted) != 1 || len(res.Failed) != 1 {
		t.Fatalf("upsert: %+v %v", res, err)
	}
	s.RevokeAll()
	_, err = c.Session(conn).UpsertContacts(context.Background(), crmtest.Contacts())
	if !errors.Is(err, crm.ErrUnauthorized) {
		t.Fatalf("error after revocation %v, want ErrUnauthorized", err)
	}
}

func TestStandInAnswersInSalesforcesShapes(t *testing.T) {
	s, err := salesforcetest.Start(salesforcetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	patch := func(token string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPatch, s.URL+"/services/data/v62.0/composite/sobjects/Contact/Jetfleet_Email__c", strings.NewReader(string(crmtest.Golden(t, "salesforce_upsert_request.json"))))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	contains := func(got []byte, file string) {
		t.Helper()
		g := jsonshape.Of(t, got)
		for _, k := range jsonshape.Of(t, crmtest.Golden(t, file)) {
			if !slices.Contains(g, k) {
				t.Fatalf("stand-in answer lacks %s of %s: %s", k, file, got)
			}
		}
	}
	st, b := patch("nope")
	if st != 401 {
		t.Fatalf("status %d", st)
	}
	contains(b, "salesforce_401.json")
	resp, err := http.PostForm(s.URL+"/services/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	contains(b, "salesforce_token_invalid_grant.json")
}
