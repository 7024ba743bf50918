package eventsexport_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/blob"
	"jetfleet/internal/crm"
	"jetfleet/internal/crm/hubspot"
	"jetfleet/internal/crm/hubspot/hubspottest"
	"jetfleet/internal/crm/salesforce"
	"jetfleet/internal/crm/salesforce/salesforcetest"
	"jetfleet/internal/events"
	"jetfleet/internal/sealed"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/eventsexport"
)

// env is a JetStream with the Events product, the two CRM stand-ins and
// what the role needs; start runs the role.
type env struct {
	t     *testing.T
	js    jetstream.JetStream
	svc   *events.Service
	runs  *crm.Runs
	creds *crm.Credentials
	blobs blob.Store
	hs    *hubspottest.Server
	sf    *salesforcetest.Server
	sfc   *salesforce.Client

	mu     sync.Mutex
	sleeps []time.Duration
	mails  []subjects.Mail
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := context.Background()
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, js: js}
	var err error
	if e.svc, err = events.Open(ctx, js, events.Config{BaseURL: "http://site"}); err != nil {
		t.Fatal(err)
	}
	if e.runs, err = crm.OpenRuns(ctx, js); err != nil {
		t.Fatal(err)
	}
	box, err := sealed.New([]byte(strings.Repeat("t", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if e.creds, err = crm.OpenCredentials(ctx, js, box); err != nil {
		t.Fatal(err)
	}
	signer, err := blob.NewURLSigner([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if e.blobs, err = blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, "http://site"); err != nil {
		t.Fatal(err)
	}
	if e.hs, err = hubspottest.Start(hubspottest.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.hs.Close() })
	if e.sf, err = salesforcetest.Start(salesforcetest.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.sf.Close() })
	e.sfc = salesforce.New(salesforce.Config{LoginURL: e.sf.URL, ClientID: e.sf.ClientID(), ClientSecret: e.sf.ClientSecret(), RedirectURL: "http://site/cb"})
	return e
}

func (e *env) worker(batch int) *eventsexport.Worker {
	return eventsexport.New(eventsexport.Deps{
		JS: e.js, Events: e.svc, Runs: e.runs, Creds: e.creds, Blobs: e.blobs,
		HubSpot: hubspot.New(hubspot.Config{BaseURL: e.hs.URL}), Salesforce: e.sfc,
		HubSpotBatch: batch, SalesforceBatch: batch, MaxDeliver: subjects.EventsExportsMaxDeliver,
		Mail: func(_ context.Context, m subjects.Mail) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.mails = append(e.mails, m)
			return nil
		},
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			e.sleeps = append(e.sleeps, d)
			e.mu.Unlock()
			return nil // the wait itself is the runtime's business, not this test's
		},
	})
}

// start runs the role until ctx ends; the returned func stops it and
// waits. The handler in flight is cut off the moment ctx ends, as killing
// the worker would: whatever it had not recorded is lost, and its job,
// not acknowledged, is delivered again.
func (e *env) start(ctx context.Context, w *eventsexport.Worker) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	handle := func(hctx context.Context, msg jetstream.Msg) error {
		hctx, cut := context.WithCancel(hctx)
		defer cut()
		defer context.AfterFunc(ctx, cut)()
		return w.Handle(hctx, msg)
	}
	c := consume.New(e.js, consume.Config{Role: "events-export", Stream: subjects.EventsExportsStream, Consumer: subjects.EventsExportsConsumer,
		BackoffMin: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond, ShutdownGrace: time.Millisecond},
		handle, consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	e.t.Cleanup(stop)
	return stop
}

const organiser = "organiserAAAAAAA"

// event creates a live event with n confirmed participants p0…p(n-1)
// (names given by name) and returns it with their registrations.
func (e *env) event(n int, name func(i int) string) (events.Event, []events.Registration) {
	e.t.Helper()
	ctx := context.Background()
	start := time.Now().AddDate(0, 0, 10).Format("2006-01-02")
	ev, err := e.svc.CreateEvent(ctx, organiser, events.EventInput{Title: "Hack night", BusinessType: "technology", Start: start + "T18:00", End: start + "T20:00", TimeZone: "UTC", Capacity: "1000"})
	if err != nil {
		e.t.Fatal(err)
	}
	if ev, err = e.svc.AddTicketType(ctx, organiser, ev.ID, events.TicketInput{Name: "Free", Price: "0", Quantity: "1000"}); err != nil {
		e.t.Fatal(err)
	}
	if ev, err = e.svc.Publish(ctx, organiser, ev.ID); err != nil {
		e.t.Fatal(err)
	}
	var regs []events.Registration
	for i := range n {
		email := fmt.Sprintf("p%03d@example.com", i)
		r, err := e.svc.Register(ctx, ev.ID, events.RegistrationInput{TicketTypeID: ev.Tickets[0].ID, Name: name(i), Email: email, Terms: true, DataSharing: true})
		if err != nil {
			e.t.Fatal(err)
		}
		if r, err = e.svc.Confirm(ctx, email, ev.ID, r.ID); err != nil {
			e.t.Fatal(err)
		}
		regs = append(regs, r)
	}
	return ev, regs
}

func plainName(i int) string { return fmt.Sprintf("Pat Nr%03d", i) }

func (e *env) connectHubSpot() {
	e.t.Helper()
	if err := e.creds.Put(context.Background(), crm.HubSpot, organiser, []byte(e.hs.Token()), ""); err != nil {
		e.t.Fatal(err)
	}
}

// connectSalesforce goes through the web-server flow against the stand-in
// as a browser would, and stores the connection.
func (e *env) connectSalesforce() {
	e.t.Helper()
	ctx := context.Background()
	state, verifier, err := e.creds.BeginOAuth(ctx, organiser)
	if err != nil {
		e.t.Fatal(err)
	}
	// The organiser clicks Allow: the consent form posts back the query.
	u, _ := url.Parse(e.sfc.AuthCodeURL(state, verifier))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(u.String(), url.Values{"q": {u.RawQuery}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Query().Get("code") == "" || back.Query().Get("state") != state {
		e.t.Fatalf("authorize redirected to %q (%v)", resp.Header.Get("Location"), err)
	}
	v, err := e.creds.FinishOAuth(ctx, organiser, state)
	if err != nil {
		e.t.Fatal(err)
	}
	conn, err := e.sfc.Exchange(ctx, back.Query().Get("code"), v)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(conn)
	if err := e.creds.Put(ctx, crm.Salesforce, organiser, b, conn.InstanceURL); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) request(eid, target, runID string) {
	e.t.Helper()
	if err := crm.Request(context.Background(), e.js, e.runs, subjects.EventsExportJob{EventID: eid, Target: target, RunID: runID, RequestedBy: organiser, MailTo: "org@example.com"}); err != nil {
		e.t.Fatal(err)
	}
}

// waitRun waits for the run to reach status and returns it.
func (e *env) waitRun(eid, target string, status crm.RunStatus) crm.Run {
	e.t.Helper()
	var run crm.Run
	testenv.EventuallyState(e.t, 30*time.Second, "export run "+string(status), func() (bool, any) {
		var err error
		run, _, err = e.runs.Get(context.Background(), eid, target)
		return err == nil && run.Status == status, run
	})
	return run
}

// waitDLQ waits for the DLQ stream to hold n messages.
func (e *env) waitDLQ(n uint64) {
	e.t.Helper()
	dlq, err := e.js.Stream(context.Background(), subjects.DLQStream)
	if err != nil {
		e.t.Fatal(err)
	}
	testenv.EventuallyState(e.t, 10*time.Second, fmt.Sprintf("%d job(s) in the DLQ", n), func() (bool, any) {
		info, err := dlq.Info(context.Background())
		return err == nil && info.State.Msgs == n, info
	})
}

func TestHubSpotExportUpsertsEveryConsentingParticipantOnceInBatches(t *testing.T) {
	e := newEnv(t)
	ev, regs := e.event(7, plainName)
	// One participant cancels: no longer a participant, not exported.
	if _, err := e.svc.Cancel(context.Background(), regs[6].Email, ev.ID, regs[6].ID); err != nil {
		t.Fatal(err)
	}
	e.connectHubSpot()
	e.start(context.Background(), e.worker(3))
	e.request(ev.ID, crm.HubSpot, "run1")
	run := e.waitRun(ev.ID, crm.HubSpot, crm.RunDone)
	if run.Total != 6 || run.Upserted != 6 || run.Created != 6 || run.Batches != 2 || len(run.Failures) != 0 {
		t.Fatalf("run = %+v, want 6 upserted in 2 batches of 3", run)
	}
	got := e.hs.Contacts()
	if len(got) != 6 || got[0].Properties["email"] != "p000@example.com" || got[0].Properties["firstname"] != "Pat" || got[0].Properties["lastname"] != "Nr000" {
		t.Fatalf("HubSpot contacts = %+v", got)
	}
}

func TestHubSpotPartialFailureIsShownPerContact(t *testing.T) {
	e := newEnv(t)
	ev, _ := e.event(4, plainName)
	e.hs.Reject("p002@example.com", "Email address p002@example.com is invalid")
	e.connectHubSpot()
	e.start(context.Background(), e.worker(100))
	e.request(ev.ID, crm.HubSpot, "run1")
	run := e.waitRun(ev.ID, crm.HubSpot, crm.RunDone)
	if run.Upserted != 3 || len(run.Failures) != 1 || run.Failures[0].Email != "p002@example.com" ||
		!strings.Contains(run.Failures[0].Message, "p002@example.com is invalid") {
		t.Fatalf("run = %+v, want 3 upserted and p002 refused with HubSpot's reason", run)
	}
	if n := len(e.hs.Contacts()); n != 3 {
		t.Fatalf("HubSpot holds %d contacts, want 3", n)
	}
}

func TestHubSpotRateLimitWaitsAsLongAsRetryAfterSays(t *testing.T) {
	e := newEnv(t)
	ev, _ := e.event(2, plainName)
	e.hs.RateLimit(2, 7*time.Second)
	e.connectHubSpot()
	e.start(context.Background(), e.worker(100))
	e.request(ev.ID, crm.HubSpot, "run1")
	run := e.waitRun(ev.ID, crm.HubSpot, crm.RunDone)
	e.mu.Lock()
	sleeps := append([]time.Duration(nil), e.sleeps...)
	e.mu.Unlock()
	if len(sleeps) != 2 || sleeps[0] != 7*time.Second || sleeps[1] != 7*time.Second {
		t.Fatalf("waited %v, want 7s twice (HubSpot's Retry-After)", sleeps)
	}
	if run.Upserted != 2 || run.Waiting != "" {
		t.Fatalf("run = %+v", run)
	}
}

// A Retry-After longer than the worker waits itself is neither cut short
// into a retry every backoff (hammering HubSpot) nor slept out in the
// consumer: the job is handed back to come again when HubSpot said, and
// the page says when.
func TestHubSpotLongRetryAfterHandsTheJobBackUntilThen(t *testing.T) {
	e := newEnv(t)
	ev, _ := e.event(2, plainName)
	e.hs.RateLimit(5, 10*time.Minute)
	e.connectHubSpot()
	e.start(context.Background(), e.worker(100))
	e.request(ev.ID, crm.HubSpot, "run1")
	testenv.EventuallyState(t, 10*time.Second, "the run shows when it resumes", func() (bool, any) {
		run, _, err := e.runs.Get(context.Background(), ev.ID, crm.HubSpot)
		return err == nil && strings.Contains(run.Waiting, "resumes at") && run.Error == "", run
	})
	time.Sleep(1500 * time.Millisecond) // several of the test runtime's 100–200ms backoffs
	if n := e.hs.RateLimited(); n != 1 {
		t.Fatalf("HubSpot was asked %d times within 1.5s of a 10-minute Retry-After, want once", n)
	}
	e.mu.Lock()
	sleeps := append([]time.Duration(nil), e.sleeps...)
	e.mu.Unlock()
	if len(sleeps) != 0 {
		t.Fatalf("the worker slept %v in the consumer, want the job handed back", sleeps)
	}
	run, _, err := e.runs.Get(context.Background(), ev.ID, crm.HubSpot)
	if err != nil || run.Status == crm.RunFailed {
		t.Fatalf("run = %+v, %v: a rate limit is not a failure", run, err)
	}
}

func TestRevokedHubSpotTokenFailsTheRunAndDeadLetters(t *testing.T) {
	e := newEnv(t)
	ev, _ := e.event(1, plainName)
	if err := e.creds.Put(context.Background(), crm.HubSpot, organiser, []byte("pat-na1-revoked"), ""); err != nil {
		t.Fatal(err)
	}
	e.start(context.Background(), e.worker(100))
	e.request(ev.ID, crm.HubSpot, "run1")
	run := e.waitRun(ev.ID, crm.HubSpot, crm.RunFailed)
	if !strings.Contains(run.Error, "reconnect") {
		t.Fatalf("run error %q does not tell the organiser to reconnect", run.Error)
	}
	e.waitDLQ(1)
}

func TestSalesforceSessionExpiredIsRefreshedAndTheExportCompletes(t *testing.T) {
	e := newEnv(t)
	ev, _ := e.event(5, plainName)
	e.connectSalesforce()
	// The session expires after the first batch: the second is refused
	// with INVALID_SESSION_ID and must be refreshed, then retried.
	e.sf.AfterBatch(func(n int) {
		if n == 1 {
			e.sf.ExpireSessions()
		}
	})
	e.start(context.Background(), e.worker(2))
	e.request(ev.ID, crm.Salesforce, "run1")
	run := e.waitRun(ev.ID, crm.Salesforce, crm.RunDone)
	if run.Upserted != 5 || run.Batches != 3 || len(run.Failures) != 0 {
		t.Fatalf("run = %+v", run)
	}
	if n := e.sf.Refreshes(); n != 2 {
		t.Fatalf("%d refresh_token grants, want 2 (the session's first token, then after INVALID_SESSION_ID)", n)
	}
	got := e.sf.Contacts()
	if len(got) != 5 || got[4].Fields["Email"] != "p004@example.com" || got[4].Fields["LastName"] != "Nr004" {
		t.Fatalf("Salesforce contacts = %+v", got)
	}
}

func TestSalesforceRefusedRecordIsShownPerContact(t *testing.T) {
	e := newEnv(t)
	ev, _ := e.event(3, plainName)
	e.sf.Reject("p001@example.com", "Email: invalid email address: p001@example.com")
	e.connectSalesforce()
	e.start(context.Background(), e.worker(200))
	e.request(ev.ID, crm.Salesforce, "run1")
	run := e.waitRun(ev.ID, crm.Salesforce, crm.RunDone)
	if run.Upserted != 2 || len(run.Failures) != 1 || run.Failures[0].Email != "p001@example.com" ||
		!strings.HasPrefix(run.Failures[0].Message, "INVALID_EMAIL_ADDRESS") {
		t.Fatalf("run = %+v", run)
	}
}

func TestKilledMidExportAndSecondFiringLeaveOneContactPerParticipant(t *testing.T) {
	e := newEnv(t)
	const n = 250
	ev, _ := e.event(n, plainName)
	e.connectHubSpot()
	e.connectSalesforce()

	// The first worker dies right after HubSpot answered its second batch
	// (before it could record it), while Salesforce is answering its
	// first (held until then).
	ctx, kill := context.WithCancel(context.Background())
	e.hs.AfterBatch(func(b int) {
		if b == 2 {
			kill()
		}
	})
	e.sf.AfterBatch(func(b int) {
		if b == 1 {
			<-ctx.Done()
		}
	})
	stop := e.start(ctx, e.worker(50))
	// The post-event schedule fires.
	if err := crm.RequestPostEvent(context.Background(), e.js, e.runs, ev.ID); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	stop()
	e.hs.AfterBatch(nil)
	e.sf.AfterBatch(nil)
	hsInputs, _ := e.hs.Inputs()
	if hsInputs == 0 || hsInputs >= n {
		t.Fatalf("the first worker sent %d HubSpot inputs; the test wants it killed mid-export", hsInputs)
	}

	// The schedule fires again, and a new worker takes over.
	if err := crm.RequestPostEvent(context.Background(), e.js, e.runs, ev.ID); err != nil {
		t.Fatal(err)
	}
	e.start(context.Background(), e.worker(50))
	hs := e.waitRun(ev.ID, crm.HubSpot, crm.RunDone)
	sf := e.waitRun(ev.ID, crm.Salesforce, crm.RunDone)
	if got := len(e.hs.Contacts()); got != n || hs.Total != n || hs.Done != n {
		t.Fatalf("HubSpot holds %d contacts (run %d/%d), want %d: one per participant", got, hs.Done, hs.Total, n)
	}
	if got := len(e.sf.Contacts()); got != n || sf.Done != n {
		t.Fatalf("Salesforce holds %d contacts (run %d), want %d", got, sf.Done, n)
	}
	// Resumed after the last recorded batch: at most the batch in flight
	// when the worker died was sent twice.
	if in, _ := e.hs.Inputs(); in > n+50 {
		t.Fatalf("HubSpot received %d inputs for %d participants: the run restarted instead of resuming", in, n)
	}
	// A third firing after the run is done sends nothing.
	before, _ := e.hs.Inputs()
	if err := crm.RequestPostEvent(context.Background(), e.js, e.runs, ev.ID); err != nil {
		t.Fatal(err)
	}
	e.waitRun(ev.ID, crm.HubSpot, crm.RunDone)
	if after, _ := e.hs.Inputs(); after != before {
		t.Fatalf("a firing after the run was done sent %d more inputs", after-before)
	}
}

func TestPersonDeletedUnderGDPRIsNeverExported(t *testing.T) {
	e := newEnv(t)
	ev, regs := e.event(3, plainName)
	// Asked before the deletion, run after it: the deleted person stays out.
	if _, err := e.svc.ForgetPerson(context.Background(), "someoneAAAAAAAAA", regs[1].Email); err != nil {
		t.Fatal(err)
	}
	e.connectHubSpot()
	e.start(context.Background(), e.worker(100))
	e.request(ev.ID, crm.HubSpot, "run1")
	e.request(ev.ID, subjects.EventsExportCSV, "csvRunAAAAAAAAAA")
	run := e.waitRun(ev.ID, crm.HubSpot, crm.RunDone)
	if run.Total != 2 {
		t.Fatalf("run = %+v, want the 2 participants left", run)
	}
	for _, c := range e.hs.Contacts() {
		if c.Properties["email"] == regs[1].Email || strings.HasPrefix(c.Properties["lastname"], "participant") {
			t.Fatalf("deleted person exported: %+v", c)
		}
	}
	e.waitRun(ev.ID, subjects.EventsExportCSV, crm.RunDone)
	rows := e.csvRows(ev.ID, "csvRunAAAAAAAAAA")
	if len(rows) != 3 {
		t.Fatalf("CSV rows = %q, want header and 2 participants", rows)
	}
	for _, r := range rows {
		if strings.Contains(strings.Join(r, ","), regs[1].Email) || strings.Contains(strings.Join(r, ","), "Deleted participant") {
			t.Fatalf("deleted person in the CSV: %q", r)
		}
	}
}

func (e *env) csvRows(eid, rid string) [][]string {
	e.t.Helper()
	rc, info, err := e.blobs.Get(context.Background(), eventsexport.CSVKey(organiser, eid, rid))
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	if !strings.HasPrefix(info.ContentType, "text/csv") {
		e.t.Fatalf("content type %q", info.ContentType)
	}
	b, _ := io.ReadAll(rc)
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		e.t.Fatal(err)
	}
	return rows
}

func TestCSVIsMailedAsALinkValidSevenDaysAndItsDeletionScheduled(t *testing.T) {
	e := newEnv(t)
	ev, _ := e.event(2, func(i int) string { return []string{"=HYPERLINK(\"x\")", "Zoë Ødegaard"}[i] })
	e.start(context.Background(), e.worker(100))
	e.request(ev.ID, subjects.EventsExportCSV, "csvRunAAAAAAAAAA")
	run := e.waitRun(ev.ID, subjects.EventsExportCSV, crm.RunDone)
	if run.Total != 2 || run.Expires.Sub(run.Finished) < 7*24*time.Hour-time.Minute {
		t.Fatalf("run = %+v, want 2 rows and a link valid 7 days", run)
	}
	rows := e.csvRows(ev.ID, "csvRunAAAAAAAAAA")
	byEmail := map[string]string{}
	for _, r := range rows[1:] {
		byEmail[r[1]] = r[0]
	}
	if rows[0][0] != "name" || byEmail["p000@example.com"] != "'=HYPERLINK(\"x\")" || byEmail["p001@example.com"] != "Zoë Ødegaard" {
		t.Fatalf("CSV rows = %q", rows)
	}
	e.mu.Lock()
	mails := append([]subjects.Mail(nil), e.mails...)
	e.mu.Unlock()
	if len(mails) != 1 || mails[0].To != "org@example.com" || !strings.Contains(mails[0].Text, "http://site/") || !strings.Contains(mails[0].Text, "7 days") {
		t.Fatalf("mails = %+v", mails)
	}
	st, err := e.js.Stream(context.Background(), subjects.GDPRExportsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), subjects.GDPRExportSchedule("csvRunAAAAAAAAAA"))
	if err != nil {
		t.Fatalf("no deletion scheduled for the CSV: %v", err)
	}
	if !strings.Contains(string(m.Data), eventsexport.CSVKey(organiser, ev.ID, "csvRunAAAAAAAAAA")) {
		t.Fatalf("schedule %s does not name the CSV", m.Data)
	}
}

func TestMalformedJobGoesToTheDLQ(t *testing.T) {
	e := newEnv(t)
	e.start(context.Background(), e.worker(100))
	if _, err := e.js.Publish(context.Background(), subjects.EventsExportSubject("notAnEventIdAAAA", "ftp"), []byte(`{"event_id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	e.waitDLQ(1)
}

func TestSalesforceRequestLimitIsRetriedWithBackoffAndResumes(t *testing.T) {
	e := newEnv(t)
	ev, _ := e.event(4, plainName)
	e.connectSalesforce()
	// The org's API limit is hit on the second request: the job goes back
	// to the queue and the next delivery resumes after the first batch.
	e.sf.AfterBatch(func(n int) {
		if n == 1 {
			e.sf.LimitNext(1)
		}
	})
	e.start(context.Background(), e.worker(2))
	e.request(ev.ID, crm.Salesforce, "run1")
	run := e.waitRun(ev.ID, crm.Salesforce, crm.RunDone)
	if run.Upserted != 4 || run.Batches != 2 || run.Error != "" {
		t.Fatalf("run = %+v", run)
	}
	if got := len(e.sf.Contacts()); got != 4 {
		t.Fatalf("Salesforce holds %d contacts", got)
	}
}
