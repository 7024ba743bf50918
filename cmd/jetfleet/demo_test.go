package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"jetfleet/analytics"
	"jetfleet/internal/blob"
	"jetfleet/internal/testenv"
	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
	"jetfleet/workers/tracker"
)

// fakeClock is the demo world's clock, moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// demoSnapshot is what a tracker sees of the world: every channel's videos
// with title, thumbnail and views.
func demoSnapshot(t *testing.T, yt *youtubetest.Server) string {
	t.Helper()
	var lines []string
	for _, ch := range yt.ChannelIDs() {
		for _, id := range yt.ChannelVideos(ch) {
			img, err := yt.ThumbnailJPEG(id, "default.jpg")
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("%s %s %q thumb=%x views=%d", ch, id, yt.Title(id), sha256.Sum256(img), yt.Views(id)))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// `make run` restarted on the same data dir continues the same demo world:
// the videos a tracker learnt of in the first run still exist, with the
// same titles and thumbnails (no spurious change, no DLQ for "unavailable").
func TestDemoWorldContinuesAfterARestartOnTheSameDataDir(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}

	first, chans, _, err := openDemoWorld(dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	initial := len(first.ChannelVideos(chans[0].ID))
	// The first run lasts 13 minutes: uploads every 4, a change every 3.
	clock.Advance(13 * time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { first.RunDemo(ctx); close(stopped) }()
	testenv.Eventually(t, 10*time.Second, "the first run's uploads and changes happen", func() bool {
		changed := false
		for _, id := range first.ChannelVideos(chans[0].ID) {
			changed = changed || strings.Contains(first.Title(id), "(new thumbnail #4)")
		}
		return len(first.ChannelVideos(chans[0].ID)) > initial && changed
	})
	cancel()
	<-stopped
	before := demoSnapshot(t, first)

	// Restart on the same dir at the same moment: the same world.
	second, _, _, err := openDemoWorld(dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if after := demoSnapshot(t, second); after != before {
		t.Fatalf("the world changed across a restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Another data dir is another, fresh world.
	fresh, _, _, err := openDemoWorld(t.TempDir(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh.ChannelVideos(chans[0].ID)) != initial {
		t.Errorf("a new data dir starts with %d videos on %s, want %d", len(fresh.ChannelVideos(chans[0].ID)), chans[0].ID, initial)
	}
}

// `jetfleet dev --demo` plants the week before the world began: the first
// channel's back catalogue sampled hourly, one video five times the
// others. That week's snapshot finds exactly that video, far above its
// channel's band; planting again (a restart) changes nothing.
func TestDemoHistoryPlantsOneChannelOutlier(t *testing.T) {
	ch, err := testenv.StartClickHouse("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Stop() }) // after the database's own cleanup
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 60*time.Second)
	log := slog.New(slog.DiscardHandler)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), log); err != nil {
		t.Fatal(err)
	}
	_, js := testenv.StartNATS(t).Connect(t)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	signer, _ := blob.NewURLSigner([]byte(strings.Repeat("s", 32)))
	blobs, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, "http://localhost")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Truncate(time.Second)
	for range 2 {
		if err := plantDemoHistory(ctx, conn, blobs, start, log); err != nil {
			t.Fatal(err)
		}
	}
	got, err := analytics.WeekOutliers(ctx, conn, tracker.DigestWeek(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].VideoID != youtubetest.DemoOutlierID || got[0].Kind != analytics.OutlierChannel || got[0].Score < 3 {
		t.Fatalf("outliers of the planted week = %+v, want %s alone as a channel outlier", got, youtubetest.DemoOutlierID)
	}
	band, err := analytics.ChannelBand(ctx, conn, got[0].ChannelID, tracker.DigestWeek(time.Now()))
	if err != nil || len(band) == 0 {
		t.Fatalf("band of the outlier's channel: %d ages (%v), want the planted week's band", len(band), err)
	}
	if _, err := blobs.Stat(ctx, subjects.TrackerBandKey(got[0].ChannelID)); err != nil {
		t.Fatalf("band snapshot of the outlier's channel: %v, want it stored for the weekly job to update", err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM video_samples FINAL").Scan(&n); err != nil || n != uint64(len(youtubetest.DemoHistory(start))) {
		t.Fatalf("%d samples after planting twice (%v), want %d", n, err, len(youtubetest.DemoHistory(start)))
	}
}
