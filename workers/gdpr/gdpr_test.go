package gdpr_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/abtest"
	"jetfleet/internal/accounts"
	"jetfleet/internal/apikeys"
	"jetfleet/internal/blob"
	"jetfleet/internal/events"
	"jetfleet/internal/gdpr"
	"jetfleet/internal/media"
	"jetfleet/internal/personaldata"
	"jetfleet/internal/testenv"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	workergdpr "jetfleet/workers/gdpr"
)

type mailbox struct {
	mu   sync.Mutex
	sent []subjects.Mail
}

func (m *mailbox) send(_ context.Context, x subjects.Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, x)
	return nil
}

func (m *mailbox) find(id string) (subjects.Mail, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.sent {
		if x.ID == id {
			return x, true
		}
	}
	return subjects.Mail{}, false
}

type site struct {
	js     jetstream.JetStream
	users  *accounts.Store
	svc    *events.Service
	reqs   *gdpr.Requests
	blobs  blob.Store
	signer *blob.URLSigner
	mail   *mailbox
	worker *workergdpr.Worker
	event  events.Event
}

// setUp runs the gdpr and gdpr-exports roles on a fresh JetStream, keeping
// exports for exportTTL (0: the default week), with an organiser's live
// event that pat and sam registered for.
func setUp(t *testing.T, exportTTL time.Duration) *site {
	t.Helper()
	return setUpWith(t, exportTTL, nil)
}

// setUpWith is setUp with the Tracker's A/B test domain that abtests
// opens (nil: the registry's own, without Google OAuth).
func setUpWith(t *testing.T, exportTTL time.Duration, abtests func(ctx context.Context, js jetstream.JetStream, blobs blob.Store) *abtest.Service) *site {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	s := &site{js: js, mail: &mailbox{}}
	var err error
	if s.users, err = accounts.Open(ctx, js, accounts.Config{}); err != nil {
		t.Fatal(err)
	}
	if s.svc, err = events.Open(ctx, js, events.Config{BaseURL: "http://site"}); err != nil {
		t.Fatal(err)
	}
	if s.reqs, err = gdpr.Open(ctx, js, nil); err != nil {
		t.Fatal(err)
	}
	signer, err := blob.NewURLSigner([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if s.blobs, err = blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, "http://site"); err != nil {
		t.Fatal(err)
	}
	s.signer = signer
	deps := personaldata.Deps{JS: js, Events: s.svc, Blobs: s.blobs}
	if abtests != nil {
		deps.ABTests = abtests(ctx, js, s.blobs)
	}
	registry, err := personaldata.Registry(ctx, deps)
	if err != nil {
		t.Fatal(err)
	}
	s.worker = workergdpr.New(workergdpr.Deps{JS: js, Accounts: s.users, Registry: registry, Requests: s.reqs, Blobs: s.blobs, Mail: s.mail.send, ExportTTL: exportTTL})
	metrics := consume.NewMetrics(prometheus.NewRegistry())
	c := consume.New(js, consume.Config{Role: "gdpr", Stream: subjects.GDPRStream, Consumer: subjects.GDPRConsumer, BackoffMin: 200 * time.Millisecond},
		s.worker.Handle, metrics, slog.New(slog.DiscardHandler))
	x := consume.New(js, consume.Config{Role: "gdpr-exports", Stream: subjects.GDPRExportsStream, Consumer: subjects.GDPRExportsConsumer, BackoffMin: 200 * time.Millisecond},
		s.worker.HandleExpiry, metrics, slog.New(slog.DiscardHandler))
	done := make(chan error, 2)
	go func() { done <- c.Run(ctx) }()
	go func() { done <- x.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	org := s.user(t, "org@example.com")
	day := time.Now().AddDate(0, 0, 10).Format("2006-01-02")
	e, err := s.svc.CreateEvent(ctx, org.ID, events.EventInput{Title: "Hack", BusinessType: "technology", Start: day + "T18:00", End: day + "T20:00", TimeZone: "UTC", Capacity: "10"})
	if err != nil {
		t.Fatal(err)
	}
	if e, err = s.svc.AddTicketType(ctx, org.ID, e.ID, events.TicketInput{Name: "Free", Price: "0", Quantity: "10"}); err != nil {
		t.Fatal(err)
	}
	if s.event, err = s.svc.Publish(ctx, org.ID, e.ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pat@example.com", "sam@example.com"} {
		s.user(t, p)
		r, err := s.svc.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: s.event.Tickets[0].ID, Name: strings.Split(p, "@")[0], Email: p, Terms: true, DataSharing: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.svc.Confirm(ctx, p, e.ID, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *site) user(t *testing.T, email string) accounts.User {
	t.Helper()
	u, err := s.users.EnsureUser(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// request makes and confirms a request as the web pages do, and waits for
// the role to finish it.
func (s *site) request(t *testing.T, kind string, u accounts.User) gdpr.Request {
	t.Helper()
	ctx := context.Background()
	r, nonce, err := s.reqs.Create(ctx, kind, u.ID, u.Email)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.reqs.Confirm(ctx, r.ID, u.ID, nonce); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, kind+" done", func() bool {
		got, err := s.reqs.For(ctx, r.ID, u.ID, nonce)
		return err == nil && got.Status == gdpr.Done
	})
	return r
}

// exportDoc is workergdpr.Export with each product's part typed.
type exportDoc struct {
	Account  accounts.User `json:"account"`
	Products struct {
		Events  events.PersonalData   `json:"events"`
		Tracker tracking.PersonalData `json:"tracker"`
		Counter struct {
			APIKeys []apikeys.OwnedKey `json:"api_keys"`
		} `json:"counter"`
		Enricher struct {
			APIKeys []apikeys.OwnedKey `json:"api_keys"`
		} `json:"enricher"`
		Media struct {
			Uploads []media.Item `json:"uploads"`
		} `json:"media"`
	} `json:"products"`
	NotKept []string `json:"not_kept"`
}

func TestExportHoldsThePersonsDataAndNobodyElses(t *testing.T) {
	s := setUp(t, 0)
	ctx := context.Background()
	pat := s.user(t, "pat@example.com")
	req := s.request(t, subjects.GDPRKindExport, pat)

	m, ok := s.mail.find("gdpr-export:" + req.ID)
	if !ok || m.To != "pat@example.com" || !strings.Contains(m.Text, "http://site/") {
		t.Fatalf("export mail %+v %v", m, ok)
	}
	rc, _, err := s.blobs.Get(ctx, workergdpr.ExportKey(pat.ID, req.ID))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	var doc exportDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Account.ID != pat.ID || doc.Account.Email != "pat@example.com" {
		t.Errorf("account %+v", doc.Account)
	}
	if len(doc.Products.Events.Registrations) != 1 {
		t.Fatalf("registrations %+v", doc.Products.Events.Registrations)
	}
	r := doc.Products.Events.Registrations[0].Registration
	if r.Email != "pat@example.com" || !r.Consent.DataSharing || r.Consent.Version != events.ConsentVersion {
		t.Errorf("registration with consent %+v", r)
	}
	if strings.Contains(string(raw), "sam@example.com") || strings.Contains(string(raw), "org@example.com") {
		t.Error("export includes another person's data")
	}

	// The organiser's export has their events and no participant's data.
	org := s.user(t, "org@example.com")
	oreq := s.request(t, subjects.GDPRKindExport, org)
	rc, _, err = s.blobs.Get(ctx, workergdpr.ExportKey(org.ID, oreq.ID))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(rc)
	rc.Close()
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Products.Events.OrganisedEvents) != 1 || doc.Products.Events.OrganisedEvents[0].ID != s.event.ID || len(doc.Products.Events.Registrations) != 0 {
		t.Errorf("organiser export %+v", doc.Products.Events)
	}
	if strings.Contains(string(raw), "pat@example.com") {
		t.Error("organiser export includes a participant's address")
	}
}

func TestDeletionPseudonymisesRegistrationsDeletesTheAccountAndEndsSessions(t *testing.T) {
	s := setUp(t, 0)
	ctx := context.Background()
	pat := s.user(t, "pat@example.com")
	sam := s.user(t, "sam@example.com")
	sessions, err := s.js.KeyValue(ctx, subjects.SessionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	patSession, samSession := strings.Repeat("p", 43), strings.Repeat("s", 43)
	for k, u := range map[string]accounts.User{patSession: pat, samSession: sam} {
		b, _ := json.Marshal(map[string]any{"user_id": u.ID, "email": u.Email, "created": time.Now()})
		if _, err := sessions.Create(ctx, k, b, jetstream.KeyTTL(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	before, err := s.svc.Available(ctx, s.event)
	if err != nil || len(before) == 0 {
		t.Fatalf("seats before: %v %v", before, err)
	}

	req := s.request(t, subjects.GDPRKindDelete, pat)

	if _, err := s.users.User(ctx, pat.ID); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("user still there: %v", err)
	}
	if _, err := s.users.UserByEmail(ctx, "pat@example.com"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("email index still there: %v", err)
	}
	if _, err := sessions.Get(ctx, patSession); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("pat's session not ended: %v", err)
	}
	if _, err := sessions.Get(ctx, samSession); err != nil {
		t.Errorf("sam's session ended too: %v", err)
	}
	org, _ := s.users.UserByEmail(ctx, "org@example.com")
	roster, err := s.svc.EventRegistrations(ctx, org.ID, s.event.ID)
	regs := roster.Registrations
	if err != nil || len(regs) != 2 {
		t.Fatalf("organiser's list %+v %v", regs, err)
	}
	var pseudonym events.Registration
	for _, r := range regs {
		if r.Pseudonymised {
			pseudonym = r
		} else if r.Email != "sam@example.com" {
			t.Errorf("other registration changed: %+v", r)
		}
	}
	if pseudonym.Name != events.Pseudonym(pseudonym.ID) || pseudonym.Email != "" || pseudonym.Status != events.Confirmed || !pseudonym.Consent.DataSharing {
		t.Fatalf("pseudonymised registration %+v", pseudonym)
	}
	if after, err := s.svc.Available(ctx, s.event); err != nil || after[s.event.Tickets[0].ID] != before[s.event.Tickets[0].ID] {
		t.Errorf("seats changed: %v → %v (%v)", before, after, err)
	}
	// No earlier revision keeps the name or address.
	kv, _ := s.js.KeyValue(ctx, subjects.EventsRegistrationsBucket)
	hist, err := kv.History(ctx, "reg."+s.event.ID+"."+pseudonym.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hist {
		if strings.Contains(string(h.Value()), "pat") {
			t.Errorf("history keeps %s", h.Value())
		}
	}
	if mine, _ := s.svc.MyRegistrations(ctx, "pat@example.com"); len(mine) != 0 {
		t.Errorf("address still finds %d registrations", len(mine))
	}
	if m, ok := s.mail.find("gdpr-delete:" + req.ID); !ok || m.To != "pat@example.com" {
		t.Errorf("confirmation mail %+v %v", m, ok)
	}

	// Delivered again (a redelivery after a crash): harmless.
	b, _ := json.Marshal(subjects.GDPRRequest{ID: req.ID, Kind: subjects.GDPRKindDelete, UserID: pat.ID, Email: "pat@example.com"})
	if _, err := s.js.Publish(ctx, subjects.GDPRDelete, b, jetstream.WithMsgID("again")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "redelivery handled", func() bool {
		st, err := s.js.Stream(ctx, subjects.GDPRStream)
		if err != nil {
			return false
		}
		i, err := st.Info(ctx)
		return err == nil && i.State.Msgs == 0
	})
	dlq, err := s.js.Stream(ctx, subjects.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if i, err := dlq.Info(ctx); err != nil || i.State.Msgs != 0 {
		t.Errorf("redelivery dead-lettered (%v)", err)
	}
	roster2, _ := s.svc.EventRegistrations(ctx, org.ID, s.event.ID)
	if len(roster2.Registrations) != 2 {
		t.Errorf("after redelivery %d registrations", len(roster2.Registrations))
	}
}

// TestExportAndDeletionCoverEveryProduct gives pat and sam data in every
// product: pat's export holds all of pat's (and never an API key or its
// hash), and pat's deletion removes it, earlier exports included, while
// sam's stays.
func TestExportAndDeletionCoverEveryProduct(t *testing.T) {
	s := setUp(t, 0)
	ctx := context.Background()
	pat := s.user(t, "pat@example.com")
	sam := s.user(t, "sam@example.com")
	tracker, err := tracking.Open(ctx, s.js, tracking.Options{})
	if err != nil {
		t.Fatal(err)
	}
	counter, err := apikeys.OpenCounter(ctx, s.js)
	if err != nil {
		t.Fatal(err)
	}
	enricher, err := apikeys.OpenEnricher(ctx, s.js)
	if err != nil {
		t.Fatal(err)
	}
	uploads, err := media.Open(ctx, s.js, s.blobs)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]map[string]string{} // user → product → key
	for _, u := range []accounts.User{pat, sam} {
		name := strings.Split(u.Email, "@")[0]
		if _, _, err := uploads.Upload(ctx, u.ID, name+"'s talk.mp4", strings.NewReader(name+"'s recording")); err != nil {
			t.Fatal(err)
		}
		ch := "UC" + strings.Repeat(name[:1], 22)
		if err := tracker.TrackChannel(ctx, u.ID, false, subjects.TrackerChannel{ID: ch, Title: name + "'s channel"}); err != nil {
			t.Fatal(err)
		}
		if _, err := tracker.TrackVideo(ctx, u.ID, false, subjects.TrackerVideo{ID: strings.Repeat(name[:1], 11), Title: name + "'s video"}); err != nil {
			t.Fatal(err)
		}
		ck, _, err := counter.Issue(ctx, apikeys.NewKey{Owner: u.ID, Tenant: apikeys.TenantOf(u.ID, name+"-prod"), Name: "web"})
		if err != nil {
			t.Fatal(err)
		}
		ek, _, err := enricher.Issue(ctx, apikeys.NewKey{Owner: u.ID, Name: name + "'s pipeline"})
		if err != nil {
			t.Fatal(err)
		}
		keys[u.ID] = map[string]string{"counter": ck, "enricher": ek}
		// Looked up once, so the edge-side cache holds them.
		if _, err := counter.Lookup(ctx, ck); err != nil {
			t.Fatal(err)
		}
	}

	req := s.request(t, subjects.GDPRKindExport, pat)
	rc, _, err := s.blobs.Get(ctx, workergdpr.ExportKey(pat.ID, req.ID))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	var doc exportDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	tr := doc.Products.Tracker
	if len(tr.Channels) != 1 || tr.Channels[0].Title != "pat's channel" || len(tr.Videos) != 1 || tr.Videos[0].Title != "pat's video" || len(tr.Credits) != 1 {
		t.Errorf("tracker part %+v", tr)
	}
	if k := doc.Products.Counter.APIKeys; len(k) != 1 || k[0].Tenant != "pat-prod" || k[0].Name != "web" || k[0].Created.IsZero() {
		t.Errorf("counter part %+v", k)
	}
	if k := doc.Products.Enricher.APIKeys; len(k) != 1 || k[0].Name != "pat's pipeline" || k[0].Created.IsZero() {
		t.Errorf("enricher part %+v", k)
	}
	if u := doc.Products.Media.Uploads; len(u) != 1 || u[0].Name != "pat's talk.mp4" || u[0].SHA256 == "" {
		t.Errorf("media part %+v", u)
	}
	for _, k := range keys[pat.ID] {
		if strings.Contains(string(raw), k) || strings.Contains(string(raw), k[:8]) || strings.Contains(string(raw), apikeys.Hash(k)) {
			t.Errorf("export shows an API key, its prefix or its hash")
		}
	}
	if strings.Contains(string(raw), "sam") {
		t.Error("export includes sam's data")
	}

	s.request(t, subjects.GDPRKindDelete, pat)
	if d, err := tracker.PersonalDataOf(ctx, pat.ID); err != nil || len(d.Channels)+len(d.Videos)+len(d.Credits) != 0 {
		t.Errorf("tracker keeps %+v (%v)", d, err)
	}
	if live, _ := tracker.LiveChannels(ctx); !slices.Equal(live, []string{"UC" + strings.Repeat("s", 22)}) {
		t.Errorf("channels still checked: %v, want sam's only", live)
	}
	var last error
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lookup of pat's counter key: %v", last)
		}
	})
	testenv.Eventually(t, 5*time.Second, "pat's counter key refused", func() bool {
		_, last = counter.Lookup(ctx, keys[pat.ID]["counter"])
		return errors.Is(last, apikeys.ErrUnknownKey)
	})
	if _, err := enricher.Lookup(ctx, keys[pat.ID]["enricher"]); !errors.Is(err, apikeys.ErrUnknownKey) {
		t.Errorf("pat's enricher key: %v", err)
	}
	if _, err := counter.Lookup(ctx, keys[sam.ID]["counter"]); err != nil {
		t.Errorf("sam's counter key: %v", err)
	}
	if _, err := enricher.Lookup(ctx, keys[sam.ID]["enricher"]); err != nil {
		t.Errorf("sam's enricher key: %v", err)
	}
	if left, err := s.blobs.List(ctx, "gdpr/"+pat.ID+"/"); err != nil || len(left) != 0 {
		t.Errorf("earlier exports left: %v %v", left, err)
	}
	exports, err := s.js.Stream(ctx, subjects.GDPRExportsStream)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := exports.GetLastMsgForSubject(ctx, subjects.GDPRExportSchedule(req.ID)); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("the schedule naming pat's deleted export is still there: %v %v", m, err)
	}
	if d, _ := tracker.PersonalDataOf(ctx, sam.ID); len(d.Channels) != 1 || len(d.Videos) != 1 {
		t.Errorf("sam's tracker data changed: %+v", d)
	}
	if items, err := uploads.List(ctx, pat.ID); err != nil || len(items) != 0 {
		t.Errorf("pat's uploads left: %+v %v", items, err)
	}
	if left, err := s.blobs.List(ctx, "media/"+pat.ID+"/"); err != nil || len(left) != 0 {
		t.Errorf("pat's video files left: %v %v", left, err)
	}
	if items, _ := uploads.List(ctx, sam.ID); len(items) != 1 {
		t.Errorf("sam's uploads: %+v, want 1", items)
	}
}

func TestExportIsDeletedWhenItsLinkExpires(t *testing.T) {
	s := setUp(t, 2*time.Second)
	ctx := context.Background()
	pat := s.user(t, "pat@example.com")
	req := s.request(t, subjects.GDPRKindExport, pat)
	key := workergdpr.ExportKey(pat.ID, req.ID)
	if _, err := s.blobs.Stat(ctx, key); err != nil {
		t.Fatalf("export not stored: %v", err)
	}
	var last error
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last Stat of the export: %v", last)
		}
	})
	testenv.Eventually(t, 15*time.Second, "export deleted after its link expired", func() bool {
		_, last = s.blobs.Stat(ctx, key)
		return errors.Is(last, blob.ErrNotFound)
	})
}
