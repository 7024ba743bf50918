package tracker_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"jetfleet/analytics"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
	"jetfleet/web/tracker"
)

// A free user is told high resolution is premium (and cannot turn it on by
// posting the form anyway); a premium user turns it on for a video in its
// first 24 hours and off again; a video past them says so.
func TestHighResolutionIsPremiumOnlyAndOnlyInTheFirst24Hours(t *testing.T) {
	s := newSite(t)
	free, premium := s.as("alice"), s.as("premium")
	free.post("/tracker/track", url.Values{"ref": {"alphavideo1"}})
	premium.post("/tracker/track", url.Values{"ref": {"alphavideo1"}})

	_, body, _ := free.get("/tracker/videos/alphavideo1")
	if !strings.Contains(body, "Premium samples a video every 2 minutes") || strings.Contains(body, `name="hires" value="on"`) {
		t.Fatalf("free user's video page does not explain high resolution is premium, or offers it:\n%s", body)
	}
	code, body, _ := free.post("/tracker/videos/alphavideo1/hires", url.Values{"hires": {"on"}})
	if code != http.StatusForbidden || !strings.Contains(body, "part of premium") {
		t.Fatalf("free user turning high resolution on = %d, want 403 with the reason:\n%s", code, body)
	}

	_, body, _ = premium.get("/tracker/videos/alphavideo1")
	if !strings.Contains(body, `name="hires" value="on"`) {
		t.Fatalf("premium user is not offered high resolution:\n%s", body)
	}
	code, _, h := premium.post("/tracker/videos/alphavideo1/hires", url.Values{"hires": {"on"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/tracker/videos/alphavideo1?ok=hires-on" {
		t.Fatalf("turn on = %d → %q", code, h.Get("Location"))
	}
	if _, ok, _ := s.store.HiRes(s.ctx, "premium", "alphavideo1"); !ok {
		t.Fatal("high resolution not stored")
	}
	_, body, _ = premium.get("/tracker/videos/alphavideo1?ok=hires-on")
	if !strings.Contains(body, "Sampled every 2 minutes until") || !strings.Contains(body, "back to hourly") {
		t.Fatalf("page with high resolution on does not say so:\n%s", body)
	}
	premium.post("/tracker/videos/alphavideo1/hires", url.Values{"hires": {"off"}})
	if _, ok, _ := s.store.HiRes(s.ctx, "premium", "alphavideo1"); ok {
		t.Fatal("high resolution still on after turning it off")
	}

	if code, _, _ := premium.post("/tracker/videos/alphavideo1/hires", url.Values{"hires": {"maybe"}}); code != http.StatusBadRequest {
		t.Fatalf("hires=maybe = %d, want 400", code)
	}
	if code, _, _ := premium.post("/tracker/videos/betavideo01/hires", url.Values{"hires": {"on"}}); code != http.StatusForbidden {
		t.Fatalf("high resolution for a video the user does not track = %d, want 403", code)
	}
}

func TestHighResolutionForAVideoPastItsFirstDayIsRefusedWithTheReason(t *testing.T) {
	s := newSite(t)
	s.yt.AddVideo(chanA, "oldvideo001", "Old video", time.Now().Add(-3*24*time.Hour), 500)
	premium := s.as("premium")
	premium.post("/tracker/track", url.Values{"ref": {"oldvideo001"}})
	_, body, _ := premium.get("/tracker/videos/oldvideo001")
	if strings.Contains(body, `name="hires" value="on"`) || !strings.Contains(body, "first 24 hours only") {
		t.Fatalf("video past its first day offers high resolution or does not say why not:\n%s", body)
	}
	code, body, _ := premium.post("/tracker/videos/oldvideo001/hires", url.Values{"hires": {"on"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "past its first 24 hours") {
		t.Fatalf("turn on past the first day = %d:\n%s", code, body)
	}
}

// A day sampled every 2 minutes (720 points) draws as one line with
// readable time ticks (clock times, not 720 labels) and a bounded number
// of dots; its first 24 hours get their own chart once the curve is longer.
func TestMinuteLevelSamplesDrawAReadableFinerCurve(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	alice.post("/tracker/track", url.Values{"ref": {"betavideo01"}})
	published := time.Now().UTC().Add(-4 * 24 * time.Hour).Truncate(time.Hour)
	w, err := analytics.NewBatchWriter(s.conn, analytics.WriterConfig{Table: "video_samples",
		Columns: []string{"video_id", "channel_id", "sampled_at", "views", "likes", "title", "thumb_hash"}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for at := published; at.Before(published.Add(24 * time.Hour)); at = at.Add(2 * time.Minute) {
		w.Append(s.ctx, "betavideo01", chanB, at, uint64(n*7), uint64(0), "Beta video", "aaaa")
		n++
	}
	for at := published.Add(24 * time.Hour); at.Before(published.Add(4 * 24 * time.Hour)); at = at.Add(time.Hour) {
		w.Append(s.ctx, "betavideo01", chanB, at, uint64(n*7), uint64(0), "Beta video", "aaaa")
		n++
	}
	if err := w.Flush(s.ctx); err != nil {
		t.Fatal(err)
	}
	// The stand-in's video was published an hour ago; the record says when
	// the samples began.
	if err := s.store.UpdateVideo(s.ctx, "betavideo01", func(v *subjects.TrackerVideo) { v.PublishedAt = published }); err != nil {
		t.Fatal(err)
	}
	_, body, _ := alice.get("/tracker/videos/betavideo01")
	if !strings.Contains(body, "in its first 24 hours: every 2 min") {
		t.Fatalf("page does not say the first day was sampled every 2 minutes")
	}
	if !strings.Contains(body, "First 24 hours (720 samples, every 2 min)") {
		t.Fatalf("no chart of the first 24 hours")
	}
	if dots := strings.Count(body, "<circle"); dots > 2*200 {
		t.Fatalf("%d dots drawn for %d samples: unreadable", dots, n)
	}
	// The first-day chart is labelled by the clock (every 6 hours at most
	// 5 labels), the whole curve by date.
	if !strings.Contains(body, ">06:00</text>") && !strings.Contains(body, ">12:00</text>") {
		t.Fatalf("first-day chart has no clock-time ticks")
	}
	if !strings.Contains(body, published.AddDate(0, 0, 2).Format("Jan 2")+"</text>") {
		t.Fatalf("four-day chart has no date ticks (want %s)", published.AddDate(0, 0, 2).Format("Jan 2"))
	}
}

// A premium user at the cap of videos at high resolution is refused the
// next one with 409 and what to do; the page says the cap.
func TestHighResolutionBeyondThePerUserCapIsRefusedWithTheReason(t *testing.T) {
	s := newSite(t, func(d *tracker.Deps) {
		st, err := tracking.Open(context.Background(), d.JS, tracking.Options{HiResPerUser: 2})
		if err != nil {
			t.Fatal(err)
		}
		d.Store = st
	})
	s.yt.AddVideo(chanA, "gammavideo1", "Gamma video", time.Now().Add(-time.Hour), 300)
	premium := s.as("premium")
	vids := []string{"alphavideo1", "betavideo01", "gammavideo1"}
	for _, v := range vids {
		premium.post("/tracker/track", url.Values{"ref": {v}})
	}
	_, body, _ := premium.get("/tracker/videos/alphavideo1")
	if !strings.Contains(body, "Up to 2 videos at once") {
		t.Fatalf("the page does not say the cap:\n%s", body)
	}
	for _, v := range vids[:2] {
		if code, _, _ := premium.post("/tracker/videos/"+v+"/hires", url.Values{"hires": {"on"}}); code != http.StatusSeeOther {
			t.Fatalf("turn on %s = %d, want 303", v, code)
		}
	}
	code, body, _ := premium.post("/tracker/videos/gammavideo1/hires", url.Values{"hires": {"on"}})
	if code != http.StatusConflict || !strings.Contains(body, "You have 2 videos sampled every 2 minutes already, the most at once") {
		t.Fatalf("a third video over a cap of 2 = %d, want 409 with the reason:\n%s", code, body)
	}
	premium.post("/tracker/videos/alphavideo1/hires", url.Values{"hires": {"off"}})
	if code, _, _ := premium.post("/tracker/videos/gammavideo1/hires", url.Values{"hires": {"on"}}); code != http.StatusSeeOther {
		t.Fatalf("after one went back to hourly, the third = %d, want 303", code)
	}
}
