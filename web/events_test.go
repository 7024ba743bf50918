package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/payments"
	"jetfleet/internal/payments/stripetest"
	"jetfleet/internal/testenv"
	"jetfleet/internal/youtube"
	"jetfleet/subjects"
	"jetfleet/web"
	"jetfleet/web/site"
)

type eventsEdge struct {
	*httptest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	stripe *stripetest.Server
}

// startEventsEdge runs an edge with Stripe pointed at the local stand-in,
// whose webhooks come back to the edge.
func startEventsEdge(t *testing.T) *eventsEdge {
	t.Helper()
	return startStripeEdge(t, nil)
}

// startStripeEdge is startEventsEdge with YouTube at yt (nil: the default
// client), for the Tracker's premium plan.
func startStripeEdge(t *testing.T, yt *youtube.Client) *eventsEdge {
	t.Helper()
	return startEventsEdgeWith(t, eventsEdgeSetup{stripe: true, deps: func(d *web.Deps) { d.YouTube = yt }})
}

// eventsEdgeSetup is what an events test edge has beside its own
// provisioned NATS server and ClickHouse database.
type eventsEdgeSetup struct {
	// stripe points Stripe at the local stand-in, whose webhooks come
	// back to the edge.
	stripe bool
	// analytics migrates the analytics tables.
	analytics bool
	config    func(*web.Config) // nil: as it is
	deps      func(*web.Deps)   // nil: as they are
}

func startEventsEdgeWith(t *testing.T, setup eventsEdgeSetup) *eventsEdge {
	t.Helper()
	srv := testenv.StartNATS(t)
	nc, js := srv.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	if setup.analytics {
		if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewUnstartedServer(nil)
	base := "http://" + hs.Listener.Addr().String()
	cfg := web.Config{SessionSecret: []byte(strings.Repeat("s", 32)), BaseURL: base}
	deps := web.Deps{NATS: nc, JS: js, ClickHouse: conn, Gatherer: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var st *stripetest.Server
	if setup.stripe {
		var err error
		st, err = stripetest.Start(stripetest.Config{WebhookURL: base + "/api/events/stripe/webhook"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if deps.Payments, err = payments.New(payments.Config{SecretKey: st.SecretKey(), WebhookSecret: st.WebhookSecret(), APIBase: st.URL}); err != nil {
			t.Fatal(err)
		}
	}
	if setup.config != nil {
		setup.config(&cfg)
	}
	if setup.deps != nil {
		setup.deps(&deps)
	}
	h, err := web.New(ctx, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = h
	hs.Start()
	t.Cleanup(hs.Close)
	return &eventsEdge{Server: hs, nc: nc, js: js, stripe: st}
}

// signIn signs v in as email through the magic link in the mail.
func signIn(t *testing.T, e *eventsEdge, v *visitor, email string) {
	t.Helper()
	v.post("/signin", "/signin", url.Values{"email": {email}})
	followLink(t, e, v)
}

// followLink opens the magic link of the last mail and returns where it
// lands.
func followLink(t *testing.T, e *eventsEdge, v *visitor) string {
	t.Helper()
	m := linkPattern.FindStringSubmatch(lastMail(t, e.js).Text)
	if m == nil {
		t.Fatal("no magic link in the last mail")
	}
	token, _ := url.QueryUnescape(m[1])
	resp := v.post("/signin/verify?token="+url.QueryEscape(token), "/signin/verify", url.Values{"token": {token}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify = %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

var eventPath = regexp.MustCompile(`^/events/organise/([A-Za-z0-9_-]{16})\?ok=created$`)

func createEvent(t *testing.T, v *visitor, title string) string {
	t.Helper()
	resp := v.post("/events/organise/new", "/events/organise/new", url.Values{
		"title": {title}, "description": {"Hack on Go"}, "business_type": {"technology"},
		"start": {time.Now().AddDate(0, 0, 10).Format("2006-01-02") + "T18:00"}, "end": {time.Now().AddDate(0, 0, 10).Format("2006-01-02") + "T22:00"},
		"time_zone": {"Europe/Berlin"}, "capacity": {"50"},
	})
	m := eventPath.FindStringSubmatch(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || m == nil {
		t.Fatalf("create event = %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return m[1]
}

func addTicket(t *testing.T, v *visitor, id, name, price string) {
	t.Helper()
	page := "/events/organise/" + id
	resp := v.post(page, page+"/tickets", url.Values{"ticket_name": {name}, "price": {price}, "currency": {"eur"}, "quantity": {"20"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add ticket %s = %d", name, resp.StatusCode)
	}
}

func TestEventFormShowsEveryProblemAndSavesNothing(t *testing.T) {
	e := startEventsEdge(t)
	v := newVisitor(t, e.URL)
	signIn(t, e, v, "alice@example.com")
	_, body := v.get("/events/organise/new")
	token := csrfInput.FindStringSubmatch(body)[1]
	resp, err := v.c.PostForm(e.URL+"/events/organise/new", url.Values{"csrf_token": {token}, "title": {""}, "start": {"2020-01-01T10:00"}, "end": {"2020-01-01T09:00"}, "time_zone": {"Nowhere/City"}, "capacity": {"lots"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid event = %d, want 422", resp.StatusCode)
	}
	for _, want := range []string{"Give the event a title.", "Choose a business type", "Choose a time zone", "Give the number of seats", "Nothing was saved"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("form does not say %q", want)
		}
	}
	if _, dash := v.get("/events/organise"); strings.Contains(dash, "<table") {
		t.Error("a refused event appears on the dashboard")
	}
}

func TestOrganisersSeeAndChangeOnlyTheirOwnEventsOverHTTP(t *testing.T) {
	e := startEventsEdge(t)
	alice, bob := newVisitor(t, e.URL), newVisitor(t, e.URL)
	signIn(t, e, alice, "alice@example.com")
	signIn(t, e, bob, "bob@example.com")
	id := createEvent(t, alice, "Alice's hack night")

	if code, _ := bob.get("/events/organise/" + id); code != http.StatusNotFound {
		t.Errorf("bob reads alice's event = %d, want 404", code)
	}
	if _, dash := bob.get("/events/organise"); strings.Contains(dash, "Alice's hack night") || strings.Contains(dash, "Alice&#39;s hack night") {
		t.Error("bob's dashboard lists alice's event")
	}
	// bob submits forms (with his own CSRF token) against alice's event.
	for _, path := range []string{"/publish", "/tickets", "/edit"} {
		if resp := bob.post("/events/organise", "/events/organise/"+id+path, url.Values{"title": {"pwned"}, "ticket_name": {"x"}, "price": {"0"}, "quantity": {"1"}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("bob POST %s = %d, want 404", path, resp.StatusCode)
		}
	}
	if _, page := alice.get("/events/organise/" + id); !strings.Contains(page, "draft") || strings.Contains(page, "pwned") {
		t.Error("alice's event was changed by bob")
	}
	// Anonymous visitors are sent to sign in.
	anon := newVisitor(t, e.URL)
	if code, _ := anon.get("/events/organise/" + id); code != http.StatusSeeOther {
		t.Errorf("anonymous organiser page = %d", code)
	}
	// A draft is not public.
	if code, _ := anon.get("/events/e/" + id); code != http.StatusNotFound {
		t.Errorf("public page of a draft = %d", code)
	}
}

var regPath = regexp.MustCompile(`^/events/e/([A-Za-z0-9_-]{16})/r/([A-Za-z0-9_-]{16})$`)

func TestTicketsFromPublishToPaidOverHTTP(t *testing.T) {
	e := startEventsEdge(t)
	org := newVisitor(t, e.URL)
	signIn(t, e, org, "org@example.com")
	id := createEvent(t, org, "Community Hack Day")
	addTicket(t, org, id, "Community", "0")
	addTicket(t, org, id, "Supporter", "15.00")
	page := "/events/organise/" + id

	// Publishing with a paid ticket needs Stripe.
	resp := org.post(page, page+"/publish", url.Values{})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("publish without Stripe = %d, want 422", resp.StatusCode)
	}
	if _, body := org.get(page); !strings.Contains(body, ">draft<") {
		t.Fatal("event went live without Stripe")
	}
	// Connect: Stripe onboarding at the stand-in, back to the dashboard.
	resp = org.post("/events/organise", "/events/stripe/connect", url.Values{})
	onboarding := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(onboarding, e.stripe.URL+"/connect/onboarding/") {
		t.Fatalf("connect = %d → %q", resp.StatusCode, onboarding)
	}
	r2, err := org.c.PostForm(onboarding, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	back := r2.Header.Get("Location")
	if code, _ := org.get(strings.TrimPrefix(back, e.URL)); code != http.StatusSeeOther {
		t.Fatalf("stripe return = %d", code)
	}
	if _, dash := org.get("/events/organise"); !strings.Contains(dash, "Stripe connected") {
		t.Fatal("dashboard does not show Stripe connected")
	}
	if resp := org.post(page, page+"/publish", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("publish = %d", resp.StatusCode)
	}

	// A participant finds it by type and date.
	p := newVisitor(t, e.URL)
	day := time.Now().AddDate(0, 0, 10).Format("2006-01-02")
	testenv.Eventually(t, 5*time.Second, "event listed", func() bool {
		_, body := p.get("/events?type=technology&from=" + day + "&to=" + day)
		return strings.Contains(body, "Community Hack Day")
	})
	if _, body := p.get("/events?type=health"); strings.Contains(body, "Community Hack Day") {
		t.Error("listed under another business type")
	}
	if code, _ := p.get("/events?from=yesterday"); code != http.StatusBadRequest {
		t.Errorf("bad date = %d, want 400", code)
	}
	_, body := p.get("/events/e/" + id)
	tickets := regexp.MustCompile(`name="ticket" value="([^"]+)"[^>]*data-name="([^"]+)"`).FindAllStringSubmatch(body, -1)
	ids := map[string]string{}
	for _, m := range tickets {
		ids[m[2]] = m[1]
	}
	if len(ids) != 2 {
		t.Fatalf("ticket choices %v", ids)
	}

	// Without both consents nothing is registered.
	resp = p.post("/events/e/"+id, "/events/e/"+id+"/register", url.Values{"ticket": {ids["Community"]}, "name": {"Pat"}, "email": {"pat@example.com"}, "terms": {"yes"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("register without data-sharing consent = %d", resp.StatusCode)
	}

	// Free ticket: register → magic link → confirm.
	resp = p.post("/events/e/"+id, "/events/e/"+id+"/register", url.Values{"ticket": {ids["Community"]}, "name": {"Pat"}, "email": {"pat@example.com"}, "terms": {"yes"}, "data_sharing": {"yes"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register = %d", resp.StatusCode)
	}
	landing := followLink(t, e, p)
	if !regPath.MatchString(landing) {
		t.Fatalf("magic link lands on %q", landing)
	}
	if resp := p.post(landing, landing+"/confirm", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm = %d", resp.StatusCode)
	}
	if _, body := p.get(landing); !strings.Contains(body, `id="reg-status">confirmed<`) {
		t.Fatal("free registration not confirmed")
	}
	if m := lastMail(t, e.js); m.To != "pat@example.com" || !strings.Contains(m.Subject, "confirmed") {
		t.Errorf("confirmation mail %+v", m)
	}

	// Someone else cannot see or confirm it.
	mallory := newVisitor(t, e.URL)
	signIn(t, e, mallory, "mallory@example.com")
	if code, _ := mallory.get(landing); code != http.StatusNotFound {
		t.Errorf("mallory reads pat's registration = %d", code)
	}
	if _, body := mallory.get("/events/mine"); strings.Contains(body, "Community Hack Day") {
		t.Error("mallory's events list pat's registration")
	}

	// Paid ticket, registered signed out: register → link → confirm →
	// Checkout → webhook → paid.
	p.post("/", "/signout", url.Values{})
	p.post("/events/e/"+id, "/events/e/"+id+"/register", url.Values{"ticket": {ids["Supporter"]}, "name": {"Pat"}, "email": {"pat@example.com"}, "terms": {"yes"}, "data_sharing": {"yes"}})
	paidReg := followLink(t, e, p)
	resp = p.post(paidReg, paidReg+"/confirm", url.Values{})
	checkout := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(checkout, e.stripe.URL+"/pay/") {
		t.Fatalf("confirm paid = %d → %q", resp.StatusCode, checkout)
	}
	csID := strings.TrimPrefix(checkout, e.stripe.URL+"/pay/")
	cs, _ := e.stripe.Session(csID)
	if cs.AmountTotal != 1500 || cs.Currency != "eur" || cs.ApplicationFeeAmount != 0 || !strings.HasPrefix(cs.Destination, "acct_") {
		t.Fatalf("checkout session %+v", cs)
	}
	// A second click on "pay" goes back to the same session.
	if again := p.post(paidReg, paidReg+"/confirm", url.Values{}).Header.Get("Location"); again != checkout {
		t.Fatalf("second confirm → %q, want the same checkout %q", again, checkout)
	}
	r3, err := p.c.PostForm(checkout, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if loc := r3.Header.Get("Location"); loc != e.URL+paidReg+"?paid=1" {
		t.Fatalf("after paying: → %q", loc)
	}
	if _, body := p.get(paidReg + "?paid=1"); !strings.Contains(body, `id="reg-status">paid<`) {
		t.Fatal("paid registration not marked paid")
	}
	paidMail := lastMail(t, e.js)
	if !strings.Contains(paidMail.Subject, "Payment received") {
		t.Fatalf("last mail %q", paidMail.Subject)
	}
	// Stripe delivers the event again: nothing changes, no second mail.
	for _, ev := range e.stripe.Events() {
		if err := e.stripe.Deliver(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	str, _ := e.js.Stream(context.Background(), subjects.EventsStream)
	info, _ := str.Info(context.Background(), jetstream.WithSubjectFilter(subjects.EventsSubject(subjects.EventsKindPaid, id)))
	if n := info.State.Subjects[subjects.EventsSubject(subjects.EventsKindPaid, id)]; n != 1 {
		t.Errorf("%d paid domain events after a redelivery, want 1", n)
	}
	if m := lastMail(t, e.js); m.ID != paidMail.ID {
		t.Errorf("a redelivered webhook sent mail %q", m.Subject)
	}
	// "My events" lists both.
	if _, body := p.get("/events/mine"); strings.Count(body, "Community Hack Day") != 2 {
		t.Errorf("my events lists %d registrations", strings.Count(body, "Community Hack Day"))
	}
	// The organiser sees both registrations; a forged webhook is refused.
	if _, body := org.get(page); !strings.Contains(body, "pat@example.com") || !strings.Contains(body, "Registrations (2)") {
		t.Error("organiser does not see the registrations")
	}
	forged, _ := http.Post(e.URL+"/api/events/stripe/webhook", "application/json", strings.NewReader(`{"id":"evt_x","type":"checkout.session.completed"}`))
	var refusal site.ErrorBody
	if err := json.NewDecoder(forged.Body).Decode(&refusal); err != nil || forged.StatusCode != http.StatusBadRequest || refusal.Code != site.CodeBadRequest {
		t.Errorf("unsigned webhook = %d %+v (%v), want 400 with code %q", forged.StatusCode, refusal, err, site.CodeBadRequest)
	}
	forged.Body.Close()
}
