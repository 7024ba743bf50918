package youtubetest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/internal/youtube"
	"jetfleet/internal/youtube/youtubetest"
)

func TestDemoWorldIsReachableAndKeepsPublishing(t *testing.T) {
	s := youtubetest.New(youtubetest.Options{})
	url := s.Start()
	t.Cleanup(s.Close)
	cfg := youtubetest.DemoConfig{UploadEvery: 20 * time.Millisecond, ChangeAfter: 20 * time.Millisecond}
	chans := s.PopulateDemo(cfg)
	c, err := youtube.New(youtube.Config{BaseURL: url, ThumbnailURL: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, 20*time.Second)
	for i, ch := range chans {
		got, err := c.ResolveHandle(ctx, ch.Handle)
		if err != nil || got.ID != ch.ID {
			t.Fatalf("resolve %s: %+v %v", ch.Handle, got, err)
		}
		// Three recent uploads each; the first channel also has the back
		// catalogue of the week the demo plants (its outlier's history).
		// The feed lists the 15 newest, as YouTube's does.
		want := min(len(s.ChannelVideos(ch.ID)), 15)
		if want < 3 || i == 0 && want <= 3 {
			t.Fatalf("channel %s has %d videos; want 3, and more for the first", ch.ID, want)
		}
		f, err := c.Feed(ctx, ch.ID)
		if err != nil || len(f.Entries) != want {
			t.Fatalf("feed %s: %d entries, %v; want %d", ch.ID, len(f.Entries), err, want)
		}
	}
	first := s.ChannelVideos(chans[0].ID)
	newest := first[len(first)-1]
	before, _ := c.Video(ctx, newest)

	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go s.RunDemo(runCtx)
	testenv.Eventually(t, 10*time.Second, "a new upload appears", func() bool {
		return len(s.ChannelVideos(chans[0].ID)) > len(first)
	})
	testenv.Eventually(t, 10*time.Second, "views grow", func() bool {
		v, err := c.Video(ctx, newest)
		return err == nil && v.Views > before.Views
	})
	testenv.Eventually(t, 10*time.Second, "a title and thumbnail change", func() bool {
		for _, id := range s.ChannelVideos(chans[0].ID) {
			if strings.Contains(s.Title(id), "(new thumbnail #") {
				return true
			}
		}
		return false
	})
}
