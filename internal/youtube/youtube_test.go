package youtube_test

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"testing"
	"time"

	"jetfleet/internal/youtube"
	"jetfleet/internal/youtube/youtubetest"
)

func TestParseAcceptsEveryFormPeoplePaste(t *testing.T) {
	ch := "UCuAXFkgsw1L7xaCfnd5JJOw"
	cases := []struct {
		in   string
		want youtube.Ref
	}{
		{ch, youtube.Ref{Kind: youtube.KindChannel, ID: ch}},
		{"https://www.youtube.com/channel/" + ch, youtube.Ref{Kind: youtube.KindChannel, ID: ch}},
		{"youtube.com/channel/" + ch + "/videos", youtube.Ref{Kind: youtube.KindChannel, ID: ch}},
		{"@RickAstleyYT", youtube.Ref{Kind: youtube.KindChannel, Handle: "@RickAstleyYT"}},
		{"https://m.youtube.com/@RickAstleyYT/featured", youtube.Ref{Kind: youtube.KindChannel, Handle: "@RickAstleyYT"}},
		{"dQw4w9WgXcQ", youtube.Ref{Kind: youtube.KindVideo, ID: "dQw4w9WgXcQ"}},
		{" https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s ", youtube.Ref{Kind: youtube.KindVideo, ID: "dQw4w9WgXcQ"}},
		{"https://youtu.be/dQw4w9WgXcQ?si=abc", youtube.Ref{Kind: youtube.KindVideo, ID: "dQw4w9WgXcQ"}},
		{"https://www.youtube.com/shorts/dQw4w9WgXcQ", youtube.Ref{Kind: youtube.KindVideo, ID: "dQw4w9WgXcQ"}},
		{"https://www.youtube.com/live/dQw4w9WgXcQ", youtube.Ref{Kind: youtube.KindVideo, ID: "dQw4w9WgXcQ"}},
	}
	for _, c := range cases {
		got, err := youtube.Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestParseRejectsWhatIsNotAChannelOrVideo(t *testing.T) {
	for _, in := range []string{"", "hello world", "https://vimeo.com/12345", "https://www.youtube.com/watch?v=short",
		"https://www.youtube.com/feed/trending", "UCshort", "@x", "https://youtu.be/"} {
		if _, err := youtube.Parse(in); !errors.Is(err, youtube.ErrNotYouTube) {
			t.Errorf("Parse(%q) error = %v; want ErrNotYouTube", in, err)
		}
	}
}

func world(t *testing.T) (*youtubetest.Server, *youtube.Client) {
	t.Helper()
	s := youtubetest.New(youtubetest.Options{})
	url := s.Start()
	t.Cleanup(s.Close)
	s.AddChannel(youtubetest.ChannelID(1), "@gophers", "Gopher Talks")
	s.AddVideo(youtubetest.ChannelID(1), "abcdefghijk", "Goroutines & <threads>", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), 1234)
	s.AddVideo(youtubetest.ChannelID(1), "bcdefghijkl", "Second", time.Date(2026, 2, 2, 3, 4, 5, 0, time.UTC), 10)
	c, err := youtube.New(youtube.Config{BaseURL: url, ThumbnailURL: url, RetryMin: time.Millisecond, BreakerFailures: 5, BreakerOpen: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestWatchPageGivesViewsTitleChannelAndPublishTime(t *testing.T) {
	s, c := world(t)
	ctx := context.Background()
	v, err := c.Video(ctx, "abcdefghijk")
	if err != nil {
		t.Fatal(err)
	}
	want := youtube.Video{ID: "abcdefghijk", Title: "Goroutines & <threads>", ChannelID: youtubetest.ChannelID(1), Author: "Gopher Talks",
		Views: 1234, PublishedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if v != want {
		t.Fatalf("video = %+v\nwant    %+v", v, want)
	}
	s.AddViews("abcdefghijk", 100)
	if v, _ := c.Video(ctx, "abcdefghijk"); v.Views != 1334 {
		t.Fatalf("views after growth = %d, want 1334", v.Views)
	}
}

func TestUnknownVideoIsNotFoundAndBrokenPageIsUnparseable(t *testing.T) {
	s, c := world(t)
	ctx := context.Background()
	if _, err := c.Video(ctx, "zzzzzzzzzzz"); !errors.Is(err, youtube.ErrNotFound) {
		t.Fatalf("unknown video: %v, want ErrNotFound", err)
	}
	s.BreakWatchPage("abcdefghijk", true)
	if _, err := c.Video(ctx, "abcdefghijk"); !errors.Is(err, youtube.ErrUnparseable) {
		t.Fatalf("broken page: %v, want ErrUnparseable", err)
	}
	if _, err := youtube.ParseWatchPage([]byte(`<html><script>var ytInitialPlayerResponse = {"playabilityStatus":{"status":"OK"},"videoDetails":{"videoId":"abcdefghijk","title":"t","channelId":"UCuAXFkgsw1L7xaCfnd5JJOw","viewCount":"lots"}};</script></html>`)); !errors.Is(err, youtube.ErrUnparseable) {
		t.Fatalf("non-numeric views: %v, want ErrUnparseable", err)
	}
}

func TestFeedListsUploadsNewestFirst(t *testing.T) {
	_, c := world(t)
	f, err := c.Feed(context.Background(), youtubetest.ChannelID(1))
	if err != nil {
		t.Fatal(err)
	}
	if f.Title != "Gopher Talks" || len(f.Entries) != 2 || f.Entries[0].VideoID != "bcdefghijkl" || f.Entries[1].Title != "Goroutines & <threads>" {
		t.Fatalf("feed = %+v", f)
	}
	if _, err := c.Feed(context.Background(), youtubetest.ChannelID(2)); !errors.Is(err, youtube.ErrNotFound) {
		t.Fatalf("unknown channel: %v, want ErrNotFound", err)
	}
}

func TestHandleResolvesToChannelID(t *testing.T) {
	_, c := world(t)
	ch, err := c.ResolveHandle(context.Background(), "@gophers")
	if err != nil || ch.ID != youtubetest.ChannelID(1) || ch.Title != "Gopher Talks" {
		t.Fatalf("resolve = %+v, %v", ch, err)
	}
	if _, err := c.ResolveHandle(context.Background(), "@nobodyhere"); !errors.Is(err, youtube.ErrNotFound) {
		t.Fatalf("unknown handle: %v, want ErrNotFound", err)
	}
}

func TestThumbnailsHaveRealSizesAndChangeWhenReplaced(t *testing.T) {
	s, c := world(t)
	ctx := context.Background()
	small, err := c.Thumbnail(ctx, "abcdefghijk", youtube.ThumbSmall)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(small))
	if err != nil || cfg.Width != 120 || cfg.Height != 90 {
		t.Fatalf("default.jpg: %dx%d, %v", cfg.Width, cfg.Height, err)
	}
	high, err := c.HighThumbnail(ctx, "abcdefghijk")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _ := jpeg.DecodeConfig(bytes.NewReader(high)); cfg.Width != 1280 || cfg.Height != 720 {
		t.Fatalf("maxresdefault.jpg: %dx%d", cfg.Width, cfg.Height)
	}
	s.ChangeThumbnail("abcdefghijk")
	again, _ := c.Thumbnail(ctx, "abcdefghijk", youtube.ThumbSmall)
	if bytes.Equal(small, again) {
		t.Fatal("thumbnail bytes did not change after ChangeThumbnail")
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	s, c := world(t)
	s.FailNext(2)
	if _, err := c.Video(context.Background(), "abcdefghijk"); err != nil {
		t.Fatalf("video after two 503s: %v", err)
	}
}

func TestBreakerOpensAfterRepeatedFailures(t *testing.T) {
	s, c := world(t)
	s.SetFailing(true)
	ctx := context.Background()
	var err error
	for range 5 {
		if _, err = c.Video(ctx, "abcdefghijk"); errors.Is(err, youtube.ErrUnavailable) {
			break
		}
	}
	if !errors.Is(err, youtube.ErrUnavailable) {
		t.Fatalf("after repeated 503s: %v, want ErrUnavailable", err)
	}
	before := s.Requests("watch", "abcdefghijk")
	s.SetFailing(false)
	if _, err := c.Video(ctx, "abcdefghijk"); !errors.Is(err, youtube.ErrUnavailable) {
		t.Fatalf("open circuit: %v, want ErrUnavailable without a request", err)
	}
	if s.Requests("watch", "abcdefghijk") != before {
		t.Fatal("open circuit still sent a request")
	}
}
