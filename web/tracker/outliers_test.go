package tracker_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/blob"
	"jetfleet/subjects"
	"jetfleet/web/tracker"
	worker "jetfleet/workers/tracker"
)

// snapshot stores last week's outlier snapshot over samples in which
// channel cid has six ordinary videos and "hit" at ten times their views.
func (s *site) snapshot(cid, hit string) {
	s.t.Helper()
	week := analytics.WeekStart(time.Now()).AddDate(0, 0, -7)
	b, err := s.conn.PrepareBatch(s.ctx, "INSERT INTO video_samples (video_id, channel_id, sampled_at, views, likes, title, thumb_hash)")
	if err != nil {
		s.t.Fatal(err)
	}
	add := func(vid string, first time.Time, perHour uint64) {
		for h := range 48 {
			if err := b.Append(vid, cid, first.Add(time.Duration(h)*time.Hour), perHour*uint64(h), uint64(0), "t", "h"); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	for i := range 6 {
		add(fmt.Sprintf("usual%d", i), week.Add(time.Duration(i)*time.Hour), uint64(100+10*(i%3)))
	}
	add(hit, week.Add(10*time.Hour), 1000)
	if err := b.Send(); err != nil {
		s.t.Fatal(err)
	}
	signer, _ := blob.NewURLSigner([]byte(strings.Repeat("s", 32)))
	blobs, err := blob.NewObjectStore(s.ctx, s.js, subjects.BlobStore, signer, "http://edge.test")
	if err != nil {
		s.t.Fatal(err)
	}
	if err := worker.OutliersOfWeek(s.ctx, s.conn, blobs, week, quiet); err != nil {
		s.t.Fatal(err)
	}
}

func TestChannelPageShowsItsBandAndOutliersAndTheOutliersPageListsOnlyYours(t *testing.T) {
	s := newSite(t)
	alice, bob := s.as("alice"), s.as("bob")
	if code, _, _ := alice.post("/tracker/track", url.Values{"ref": {"@alphas"}}); code != http.StatusSeeOther {
		t.Fatalf("alice track: %d", code)
	}
	if code, _, _ := bob.post("/tracker/track", url.Values{"ref": {"@betas"}}); code != http.StatusSeeOther {
		t.Fatalf("bob track: %d", code)
	}
	s.snapshot(chanA, "alphahit001")

	code, body, _ := alice.get("/tracker/channels/" + chanA)
	if code != 200 {
		t.Fatalf("channel page %d:\n%s", code, body)
	}
	for _, want := range []string{`<polygon class="band"`, `class="band-median"`, "age 47 h", "outlier 9.1×", `href="/tracker/videos/alphahit001"`, "median 1,100 views, typical 1,050–1,200 (7 videos)"} {
		if !strings.Contains(body, want) {
			t.Errorf("channel page lacks %q", want)
		}
	}

	_, body, _ = alice.get("/tracker/outliers")
	if !strings.Contains(body, "alphahit001") || !strings.Contains(body, "× the channel&#39;s median") {
		t.Errorf("alice's outliers page lacks the hit:\n%s", body)
	}
	_, body, _ = bob.get("/tracker/outliers")
	if strings.Contains(body, "alphahit001") || !strings.Contains(body, "No outliers") {
		t.Errorf("bob's outliers page shows another channel's outlier:\n%s", body)
	}
}

func TestDigestCanBeTurnedOffAndOnAndExplainsBadInput(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	if code, _, h := alice.post("/tracker/digest", url.Values{"digest": {"off"}}); code != http.StatusSeeOther || h.Get("Location") != "/tracker/digest?ok=saved" {
		t.Fatalf("turn off: %d %q", code, h.Get("Location"))
	}
	if off, err := s.store.DigestOff(s.ctx, "alice"); err != nil || !off {
		t.Fatalf("digest off = %v, %v; want true", off, err)
	}
	if _, body, _ := alice.get("/tracker/digest?ok=saved"); !strings.Contains(body, "Saved.") || !strings.Contains(body, "Send me the weekly mail") {
		t.Errorf("digest page after turning it off:\n%s", body)
	}
	alice.post("/tracker/digest", url.Values{"digest": {"on"}})
	if off, _ := s.store.DigestOff(s.ctx, "alice"); off {
		t.Errorf("digest still off after turning it on")
	}
	if code, body, _ := alice.post("/tracker/digest", url.Values{"digest": {"maybe"}}); code != http.StatusBadRequest || !strings.Contains(body, "on or off") {
		t.Errorf("bad value: %d %q", code, body)
	}
}

func TestVideoPageOverlaysItsChannelsBandAndBadgesAnOutlier(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	if code, _, _ := alice.post("/tracker/track", url.Values{"ref": {"betavideo01"}}); code != http.StatusSeeOther {
		t.Fatalf("track: %d", code)
	}
	s.snapshot(chanB, "betavideo01")
	code, body, _ := alice.get("/tracker/videos/betavideo01")
	if code != 200 {
		t.Fatalf("video page: %d", code)
	}
	for _, want := range []string{`<polygon class="band"`, `class="band-median"`, "outlier 9.1×", "expected range at the same age (dashed: its median)"} {
		if !strings.Contains(body, want) {
			t.Errorf("video page lacks %q", want)
		}
	}
	// The band is drawn behind the curve.
	if strings.Index(body, `<polygon class="band"`) > strings.Index(body, `stroke="#2f6fed"`) {
		t.Errorf("band drawn over the views curve")
	}
}

// `jetfleet dev --demo` offers "send the digest now": it fires the weekly
// outlier tick, as the schedule does on Mondays. Elsewhere there is no
// such button or route.
func TestSendDigestNowIsADemoOnlyActionThatFiresTheWeeklyTick(t *testing.T) {
	plain := newSite(t)
	b := plain.as("alice")
	if _, body, _ := b.get("/tracker/outliers"); strings.Contains(body, "Send the digest now") {
		t.Fatal("a site that is not the demo offers to send the digest now")
	}
	if code, _, _ := b.post("/tracker/digest/now", url.Values{}); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Fatalf("send digest now outside the demo = %d, want 404/405", code)
	}

	demo := newSite(t, func(d *tracker.Deps) { d.Demo = true })
	b = demo.as("alice")
	if _, body, _ := b.get("/tracker/outliers"); !strings.Contains(body, "Send the digest now") {
		t.Fatal("the demo's outliers page has no send-the-digest-now button")
	}
	cons, err := demo.js.OrderedConsumer(demo.ctx, subjects.SchedulesStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.ScheduleTick(subjects.TrackerOutliersWeeklyTick)}})
	if err != nil {
		t.Fatal(err)
	}
	code, _, h := b.post("/tracker/digest/now", url.Values{})
	if code != http.StatusSeeOther || h.Get("Location") != "/tracker/outliers?ok=digest-sent" {
		t.Fatalf("send digest now = %d → %q", code, h.Get("Location"))
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("no weekly tick fired: %v", err)
	}
	if subjects.ScheduleName(msg.Subject()) != subjects.TrackerOutliersWeeklyTick {
		t.Fatalf("fired %s", msg.Subject())
	}
	if _, body, _ := b.get("/tracker/outliers?ok=digest-sent"); !strings.Contains(body, "goes to the outbox") {
		t.Fatal("the page does not say what happens next")
	}
}
