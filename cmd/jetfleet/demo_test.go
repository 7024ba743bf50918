package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/internal/youtube/youtubetest"
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

	first, chans, err := openDemoWorld(dir, clock.Now)
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
	second, _, err := openDemoWorld(dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if after := demoSnapshot(t, second); after != before {
		t.Fatalf("the world changed across a restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Another data dir is another, fresh world.
	fresh, _, err := openDemoWorld(t.TempDir(), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh.ChannelVideos(chans[0].ID)) != initial {
		t.Errorf("a new data dir starts with %d videos on %s, want %d", len(fresh.ChannelVideos(chans[0].ID)), chans[0].ID, initial)
	}
}
