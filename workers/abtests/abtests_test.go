package abtests_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/abtest"
	"jetfleet/internal/accounts"
	"jetfleet/internal/blob"
	"jetfleet/internal/google/oauth"
	mailer "jetfleet/internal/mail"
	"jetfleet/internal/sealed"
	"jetfleet/internal/testenv"
	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
	"jetfleet/workers/abtests"
	"jetfleet/workers/consume"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) { testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c }) }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// A title test whose variant B drew 30% more views per hour than the
// video's decay curve predicts: the wrap-up names B with high confidence,
// mails once however often it is replayed, and applies B when asked.

type world struct {
	ctx       context.Context
	js        jetstream.JetStream
	conn      driver.Conn
	now       *clock
	published time.Time
	yt        *youtubetest.Server
	google    *youtubetest.Google
	svc       *abtest.Service
	users     *accounts.Store
	u         accounts.User
	mine, vid string
	quiet     *slog.Logger
}

// connected is a world whose user connected channel mine, which has
// video vid.
func connected(t *testing.T, opts ...func(*abtest.Config)) *world {
	t.Helper()
	ctx := testenv.Context(t, 60*time.Second)
	_, js := testenv.JetStream(t)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	quiet := slog.New(slog.DiscardHandler)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), quiet); err != nil {
		t.Fatal(err)
	}
	now := &clock{t: time.Now().UTC().Truncate(time.Hour)}
	published := now.Now().Add(-48 * time.Hour)
	yt := youtubetest.New(youtubetest.Options{})
	mine, vid := youtubetest.ChannelID(1), youtubetest.VideoID(1)
	yt.AddChannel(mine, "@mine", "Mine")
	yt.AddVideo(mine, vid, "Original", published, 1000)
	g := youtubetest.NewGoogle(yt, youtubetest.GoogleConfig{ClientID: "cid", ClientSecret: "cs", Channel: mine})
	gsrv := httptest.NewServer(g.Handler())
	t.Cleanup(gsrv.Close)
	signer, _ := blob.NewURLSigner([]byte(strings.Repeat("s", 32)))
	blobs, _ := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, "http://localhost")
	box, _ := sealed.New([]byte(strings.Repeat("k", 32)))
	oc, _ := oauth.New(oauth.Config{ClientID: "cid", ClientSecret: "cs", AuthBase: gsrv.URL, TokenBase: gsrv.URL, RedirectURL: "http://site/cb"})
	cfg := abtest.Config{OAuth: oc, APIBase: gsrv.URL, Tokens: box, Blobs: blobs, Now: now.Now}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := abtest.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	users, _ := accounts.Open(ctx, js, accounts.Config{})
	u, err := users.EnsureUser(ctx, "tester@example.com")
	if err != nil {
		t.Fatal(err)
	}
	authURL, _ := svc.BeginConnect(ctx, u.ID, "sess")
	loc, err := g.Consent(authURL)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := url.Parse(loc)
	if _, err := svc.FinishConnect(ctx, u.ID, "sess", cb.Query().Get("state"), cb.Query().Get("code")); err != nil {
		t.Fatal(err)
	}
	return &world{ctx: ctx, js: js, conn: conn, now: now, published: published, yt: yt, google: g, svc: svc, users: users, u: u, mine: mine, vid: vid, quiet: quiet}
}

func TestWrapUpNamesTheBetterVariantMailsOnceAndAppliesIt(t *testing.T) {
	w := connected(t)
	ctx, js, conn, now, published, yt, svc, users, u, mine, vid, quiet := w.ctx, w.js, w.conn, w.now, w.published, w.yt, w.svc, w.users, w.u, w.mine, w.vid, w.quiet
	test, err := svc.Create(ctx, u.ID, abtest.Draft{VideoID: vid, Titles: []string{"Title A", "Title B"}, Days: 2, Rotation: 6 * time.Hour, AutoApply: true})
	if err != nil {
		t.Fatal(err)
	}
	if test, err = svc.Start(ctx, u.ID, test.ID, nil); err != nil {
		t.Fatal(err)
	}
	// Each slot goes live at its time.
	for i, s := range test.Slots {
		now.Set(s.At)
		if _, err := svc.ApplySlot(ctx, test.ID, i); err != nil {
			t.Fatal(err)
		}
	}
	if test, err = svc.Test(ctx, u.ID, test.ID); err != nil {
		t.Fatal(err)
	}
	// Hourly samples over the test: views/hour = 400·age^-0.7, ×1.3
	// while B was live, with a little deterministic noise.
	b, err := conn.PrepareBatch(ctx, "INSERT INTO video_samples (video_id, channel_id, sampled_at, views, likes, title, thumb_hash)")
	if err != nil {
		t.Fatal(err)
	}
	views := 5000.0
	windows := abtest.Windows(test)
	for at := test.Start; !at.After(test.End); at = at.Add(time.Hour) {
		if err := b.Append(vid, mine, at, uint64(views), uint64(0), "t", "h"); err != nil {
			t.Fatal(err)
		}
		age := at.Add(30 * time.Minute).Sub(published).Hours()
		rate := 400 * math.Pow(age, -0.7) * (1 + 0.04*math.Sin(float64(at.Unix()/3600)))
		for _, w := range windows {
			if !at.Before(w.Start) && at.Add(time.Hour).Compare(w.End) <= 0 && w.Variant == 1 {
				rate *= 1.3
			}
		}
		views += rate
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	now.Set(test.End)

	data, _ := json.Marshal(subjects.TrackerABWrapUpMsg{Test: test.ID})
	if _, err := js.Publish(ctx, subjects.TrackerABWrapUpSubject(test.ID), data); err != nil {
		t.Fatal(err)
	}
	cons, _ := js.Consumer(ctx, subjects.TrackerABTestsStream, subjects.TrackerABWrapUpConsumer)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msg jetstream.Msg
	for m := range batch.Messages() {
		msg = m
	}
	if msg == nil {
		t.Fatal("no wrap-up message")
	}
	h := abtests.NewWrapUp(abtests.WrapUpDeps{Service: svc, ClickHouse: conn, Users: users, Mail: mailer.Enqueuer(js), BaseURL: "http://site", Log: quiet})
	for range 3 { // delivered, then replayed twice
		if err := h.Handle(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	done, _ := svc.Test(ctx, u.ID, test.ID)
	r := done.Result
	if r == nil || r.Winner != 1 || r.Confidence < 0.95 || math.Abs(r.Lift-0.3) > 0.08 {
		t.Fatalf("result %+v, want B with ≥95%% confidence and about +30%%", r)
	}
	mail, _ := js.Stream(ctx, subjects.MailStream)
	info, _ := mail.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("%d mails enqueued, want 1", info.State.Msgs)
	}
	m, err := mail.GetLastMsgForSubject(ctx, subjects.MailSend)
	if err != nil {
		t.Fatal(err)
	}
	var sent subjects.Mail
	json.Unmarshal(m.Data, &sent)
	if sent.To != "tester@example.com" || !strings.Contains(sent.Text, "Variant B won") || !strings.Contains(sent.HTML, "<table") {
		t.Fatalf("mail %+v", sent)
	}
	if _, err := svc.ApplySlot(ctx, test.ID, len(test.Slots)); err != nil {
		t.Fatal(err)
	}
	if got := yt.Title(vid); got != "Title B" {
		t.Fatalf("after auto-apply the video's title is %q, want the winner's", got)
	}
}

// A slot YouTube refuses for good (the video is no longer on the user's
// channel) is dead-lettered with the reason by the runtime, after the
// slot is marked with it on the test.
func TestRefusedSlotIsDeadLetteredWithItsReason(t *testing.T) {
	w := connected(t)
	test, err := w.svc.Create(w.ctx, w.u.ID, abtest.Draft{VideoID: w.vid, Titles: []string{"Title A", "Title B"}, Days: 1, Rotation: 12 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if test, err = w.svc.Start(w.ctx, w.u.ID, test.ID, nil); err != nil {
		t.Fatal(err)
	}
	// The video moves to a channel the user does not own.
	w.yt.AddChannel(youtubetest.ChannelID(9), "@else", "Someone else")
	w.yt.AddVideo(youtubetest.ChannelID(9), w.vid, "Original", w.published, 1000)

	data, _ := json.Marshal(subjects.TrackerABApply{Test: test.ID, Slot: 0})
	if _, err := w.js.Publish(w.ctx, subjects.TrackerABApplySubject(test.ID, 0), data); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(w.ctx)
	done := make(chan error, 1)
	go func() {
		done <- consume.New(w.js, consume.Config{Role: "tracker-abtest-apply", Stream: subjects.TrackerABTestsStream, Consumer: subjects.TrackerABApplyConsumer},
			abtests.NewApply(w.svc, w.quiet).Handle, consume.NewMetrics(prometheus.NewRegistry()), w.quiet).Run(runCtx)
	}()
	dlq, _ := w.js.Stream(w.ctx, subjects.DLQStream)
	var reason string
	testenv.EventuallyState(t, 20*time.Second, "the slot dead-lettered", func() (bool, any) {
		m, err := dlq.GetLastMsgForSubject(w.ctx, subjects.DLQ(subjects.TrackerABTestsStream, subjects.TrackerABApplyConsumer))
		if err != nil {
			return false, err
		}
		reason = m.Header.Get(subjects.HeaderDLQError)
		return true, reason
	})
	stop()
	<-done
	if !strings.Contains(reason, "forbidden") {
		t.Fatalf("dead letter reason %q", reason)
	}
	got, _ := w.svc.Test(w.ctx, w.u.ID, test.ID)
	if !strings.Contains(got.Slots[0].Skipped, "YouTube refused it") {
		t.Fatalf("slot 0 = %+v, want marked with the refusal", got.Slots[0])
	}
}

// YouTube's daily quota resets at midnight Pacific time, whatever daylight
// saving time says.
func TestQuotaResumesJustAfterTheNextPacificMidnight(t *testing.T) {
	w := connected(t)
	for _, c := range []struct{ now, want string }{
		{"2027-03-14T07:59:58Z", "2027-03-14T08:05:00Z"}, // 23:59 PST → midnight PST
		{"2027-03-14T20:00:00Z", "2027-03-15T07:05:00Z"}, // 13:00 PDT, the day the clocks went forward
		{"2027-11-07T06:30:00Z", "2027-11-07T07:05:00Z"}, // 23:30 PDT → midnight PDT (fall back at 2am)
		{"2027-11-07T20:00:00Z", "2027-11-08T08:05:00Z"}, // 12:00 PST after falling back
	} {
		now, _ := time.Parse(time.RFC3339, c.now)
		want, _ := time.Parse(time.RFC3339, c.want)
		if got := w.svc.QuotaResumes(now); !got.Equal(want) {
			t.Errorf("QuotaResumes(%s) = %s, want %s", c.now, got, want)
		}
	}
}

// A slot YouTube refuses for the day's quota (403 quotaExceeded) is neither
// retried with backoff nor dead-lettered: the test says it waits for the
// quota and until when, and the slot goes live by itself once the quota
// has reset.
func TestQuotaExceededHoldsTheSlotUntilPacificMidnightThenApplies(t *testing.T) {
	w := connected(t, func(c *abtest.Config) { c.QuotaResetMargin = time.Nanosecond })
	// 23:40 PST: slot 0 falls before midnight Pacific, slot 1 twelve hours on.
	start, _ := time.Parse(time.RFC3339, "2027-03-14T07:40:00Z")
	w.now.Set(start)
	test, err := w.svc.Create(w.ctx, w.u.ID, abtest.Draft{VideoID: w.vid, Titles: []string{"Title A", "Title B"}, Days: 1, Rotation: 12 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if test, err = w.svc.Start(w.ctx, w.u.ID, test.ID, nil); err != nil {
		t.Fatal(err)
	}
	midnight, _ := time.Parse(time.RFC3339, "2027-03-14T08:00:00Z")
	w.now.Set(midnight.Add(-1500 * time.Millisecond)) // 1.5 s before YouTube's reset
	w.google.SetQuotaLeft(0)
	before := w.google.Calls("videos.list")

	data, _ := json.Marshal(subjects.TrackerABApply{Test: test.ID, Slot: 0})
	if _, err := w.js.Publish(w.ctx, subjects.TrackerABApplySubject(test.ID, 0), data); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(w.ctx)
	done := make(chan error, 1)
	go func() {
		// A short backoff: a quota refusal retried with it would spend
		// every delivery within the test.
		done <- consume.New(w.js, consume.Config{Role: "tracker-abtest-apply", Stream: subjects.TrackerABTestsStream, Consumer: subjects.TrackerABApplyConsumer,
			BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
			abtests.NewApply(w.svc, w.quiet).Handle, consume.NewMetrics(prometheus.NewRegistry()), w.quiet).Run(runCtx)
	}()
	defer func() { stop(); <-done }()

	testenv.EventuallyState(t, 10*time.Second, "the test waits for YouTube's quota", func() (bool, any) {
		got, err := w.svc.Test(w.ctx, w.u.ID, test.ID)
		return err == nil && got.QuotaResumes.Equal(midnight.Add(time.Nanosecond)), got.QuotaResumes
	})
	if n := w.google.Calls("videos.list") - before; n != 1 {
		t.Fatalf("YouTube asked %d times before the quota reset, want once", n)
	}
	// Midnight Pacific: YouTube's quota is back.
	w.google.SetQuotaLeft(10000)
	w.now.Set(midnight.Add(time.Second))
	testenv.EventuallyState(t, 10*time.Second, "slot 0 live after the reset", func() (bool, any) {
		got, err := w.svc.Test(w.ctx, w.u.ID, test.ID)
		return err == nil && !got.Slots[0].Live.IsZero() && got.QuotaResumes.IsZero(), got.Slots[0]
	})
	if got := w.yt.Title(w.vid); got != "Title A" {
		t.Fatalf("title %q after the reset, want slot 0's", got)
	}
	dlq, _ := w.js.Stream(w.ctx, subjects.DLQStream)
	if info, _ := dlq.Info(w.ctx); info.State.Msgs != 0 {
		t.Fatalf("%d dead letters, want none: a spent quota is waited out", info.State.Msgs)
	}
}

// A slot held back past the next slot's time (YouTube's quota, retries) is
// not put live after it: that would show the wrong variant in the next
// slot's window.
func TestSlotHeldPastTheNextSlotsTimeIsSuperseded(t *testing.T) {
	w := connected(t)
	test, err := w.svc.Create(w.ctx, w.u.ID, abtest.Draft{VideoID: w.vid, Titles: []string{"Title A", "Title B"}, Days: 1, Rotation: 12 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if test, err = w.svc.Start(w.ctx, w.u.ID, test.ID, nil); err != nil {
		t.Fatal(err)
	}
	w.now.Set(test.Slots[1].At.Add(time.Minute))
	if _, err := w.svc.ApplySlot(w.ctx, test.ID, 1); err != nil {
		t.Fatal(err)
	}
	did, err := w.svc.ApplySlot(w.ctx, test.ID, 0)
	if err != nil || did.Title || !strings.HasPrefix(did.Skipped, "superseded") {
		t.Fatalf("late slot 0 = %+v, %v; want skipped as superseded", did, err)
	}
	if got := w.yt.Title(w.vid); got != "Title B" {
		t.Fatalf("title %q, want slot 1's to stay live", got)
	}
}
