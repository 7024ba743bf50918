package youtube_test

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

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
		// Handles in any script, typed or percent-encoded in a link.
		{"@日本語チャンネル", youtube.Ref{Kind: youtube.KindChannel, Handle: "@日本語チャンネル"}},
		{"@café", youtube.Ref{Kind: youtube.KindChannel, Handle: "@café"}},
		{"https://www.youtube.com/@caf%C3%A9/videos", youtube.Ref{Kind: youtube.KindChannel, Handle: "@café"}},
		// Legacy custom URLs and usernames.
		{"https://www.youtube.com/c/GopherTalks", youtube.Ref{Kind: youtube.KindChannel, Path: "/c/GopherTalks"}},
		{"youtube.com/user/gophers/videos", youtube.Ref{Kind: youtube.KindChannel, Path: "/user/gophers"}},
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
		"https://www.youtube.com/feed/trending", "UCshort", "@x", "https://youtu.be/", "@has space", "https://www.youtube.com/c/"} {
		if _, err := youtube.Parse(in); !errors.Is(err, youtube.ErrNotYouTube) {
			t.Errorf("Parse(%q) error = %v; want ErrNotYouTube", in, err)
		}
	}
}

func world(t *testing.T) (*youtubetest.Server, *youtube.Client) {
	t.Helper()
	s, c, _ := worldWithMetrics(t)
	return s, c
}

func worldWithMetrics(t *testing.T) (*youtubetest.Server, *youtube.Client, *prometheus.Registry) {
	t.Helper()
	s := youtubetest.New(youtubetest.Options{})
	url := s.Start()
	t.Cleanup(s.Close)
	s.AddChannel(youtubetest.ChannelID(1), "@gophers", "Gopher Talks")
	s.AddVideo(youtubetest.ChannelID(1), "abcdefghijk", "Goroutines & <threads>", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), 1234)
	s.AddVideo(youtubetest.ChannelID(1), "bcdefghijkl", "Second", time.Date(2026, 2, 2, 3, 4, 5, 0, time.UTC), 10)
	reg := prometheus.NewRegistry()
	c, err := youtube.New(youtube.Config{BaseURL: url, ThumbnailURL: url, RetryMin: time.Millisecond, BreakerFailures: 5, BreakerOpen: time.Hour,
		Metrics: youtube.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, reg
}

func TestWatchPageGivesViewsTitleChannelAndPublishTime(t *testing.T) {
	s, c := world(t)
	ctx := context.Background()
	v, err := c.Video(ctx, "abcdefghijk")
	if err != nil {
		t.Fatal(err)
	}
	want := youtube.Video{ID: "abcdefghijk", Title: "Goroutines & <threads>", ChannelID: youtubetest.ChannelID(1), Author: "Gopher Talks",
		Views: 1234, Likes: 1234 / 40, PublishedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
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

func TestBotCheckIsARefusalThatIsRetriedCountedAndOpensTheBreaker(t *testing.T) {
	s, c, reg := worldWithMetrics(t)
	s.Refuse(youtubetest.RefuseBotCheck)
	ctx := context.Background()
	_, err := c.Video(ctx, "abcdefghijk")
	var refusal *youtube.RefusalError
	if !errors.As(err, &refusal) || refusal.Kind != youtube.RefusedBotCheck || errors.Is(err, youtube.ErrNotFound) {
		t.Fatalf("bot check: %v; want a bot-check refusal, not 'not found'", err)
	}
	if n := s.Requests("watch", "abcdefghijk"); n != 3 {
		t.Fatalf("bot check tried %d times, want 3 (retried like a 503)", n)
	}
	if n := testutil.ToFloat64(youtube.NewMetrics(reg).Refusals(youtube.RefusedBotCheck)); n != 3 {
		t.Fatalf("jetfleet_youtube_refusals_total{kind=bot_check} = %v, want 3", n)
	}
	for range 3 {
		if _, err = c.Video(ctx, "abcdefghijk"); errors.Is(err, youtube.ErrUnavailable) {
			break
		}
	}
	if !errors.Is(err, youtube.ErrUnavailable) {
		t.Fatalf("after repeated bot checks: %v, want the circuit open (ErrUnavailable)", err)
	}
}

func TestRateLimitAndConsentWallAreRefusals(t *testing.T) {
	for _, c := range []struct {
		refuse string
		want   youtube.Refusal
	}{{youtubetest.RefuseRateLimit, youtube.RefusedRateLimit}, {youtubetest.RefuseConsent, youtube.RefusedConsent}} {
		for _, call := range []func(*youtube.Client) error{
			func(y *youtube.Client) error { _, err := y.Video(context.Background(), "abcdefghijk"); return err },
			func(y *youtube.Client) error {
				_, err := y.Feed(context.Background(), youtubetest.ChannelID(1))
				return err
			},
			func(y *youtube.Client) error {
				_, err := y.ResolveHandle(context.Background(), "@gophers")
				return err
			},
		} {
			// A fresh client each: its breaker has seen nothing yet.
			s, client := world(t)
			s.Refuse(c.refuse)
			err := call(client)
			var refusal *youtube.RefusalError
			if !errors.As(err, &refusal) || refusal.Kind != c.want {
				t.Errorf("refuse %s: %v; want refusal %s", c.refuse, err, c.want)
			}
		}
	}
}

func TestConsentCookieGetsPastTheEUConsentWall(t *testing.T) {
	s, c := world(t)
	s.RequireConsent(true)
	if v, err := c.Video(context.Background(), "abcdefghijk"); err != nil || v.Views != 1234 {
		t.Fatalf("video behind the consent wall: %+v, %v", v, err)
	}
}

func TestVideoStatesAreShownAsSuchNotAsNotFound(t *testing.T) {
	s, c := world(t)
	ctx := context.Background()
	for _, st := range []struct {
		set  string
		want youtube.VideoState
	}{
		{youtubetest.StatePrivate, youtube.StatePrivate},
		{youtubetest.StateRemoved, youtube.StateRemoved},
		{youtubetest.StateMembersOnly, youtube.StateMembersOnly},
	} {
		s.SetState("abcdefghijk", st.set)
		_, err := c.Video(ctx, "abcdefghijk")
		var state *youtube.StateError
		if !errors.As(err, &state) || state.State != st.want || errors.Is(err, youtube.ErrNotFound) {
			t.Errorf("%s video: %v; want state %s", st.set, err, st.want)
		}
	}
	// An age-gated page still gives the counts: a good sample, with the state.
	s.SetState("abcdefghijk", youtubetest.StateAgeRestricted)
	v, err := c.Video(ctx, "abcdefghijk")
	if err != nil || v.State != youtube.StateAgeRestricted || v.Views != 1234 {
		t.Fatalf("age-gated video: %+v, %v", v, err)
	}
}

func TestChannelWhoseFeedFailsIsLookedUpOnItsPage(t *testing.T) {
	s, c := world(t)
	ctx := context.Background()
	s.FailFeeds(true)
	ch, err := c.Channel(ctx, youtubetest.ChannelID(1))
	if err != nil || ch.ID != youtubetest.ChannelID(1) || ch.Title != "Gopher Talks" {
		t.Fatalf("channel during a feed outage: %+v, %v", ch, err)
	}
	if _, err := c.Channel(ctx, youtubetest.ChannelID(2)); !errors.Is(err, youtube.ErrNotFound) {
		t.Fatalf("unknown channel during a feed outage: %v, want ErrNotFound (its page says so)", err)
	}
	s.SetFailing(true)
	if _, err := c.Channel(ctx, youtubetest.ChannelID(1)); !errors.Is(err, youtube.ErrNoAnswer) || errors.Is(err, youtube.ErrNotFound) {
		t.Fatalf("channel when YouTube answers nothing: %v, want ErrNoAnswer", err)
	}
}

func TestFeedOutageIsRetriedAndOpensTheBreaker(t *testing.T) {
	s, c := world(t)
	ctx := context.Background()
	s.FailFeeds(true)
	_, err := c.Feed(ctx, youtubetest.ChannelID(1))
	if !errors.Is(err, youtube.ErrNotFound) {
		t.Fatalf("feed 404: %v, want ErrNotFound after the attempts", err)
	}
	if n := s.Requests("feed", youtubetest.ChannelID(1)); n != 3 {
		t.Fatalf("feed 404 tried %d times, want 3 (retried like a 503)", n)
	}
	for range 3 {
		if _, err = c.Feed(ctx, youtubetest.ChannelID(1)); errors.Is(err, youtube.ErrUnavailable) {
			break
		}
	}
	if !errors.Is(err, youtube.ErrUnavailable) {
		t.Fatalf("after repeated feed 404s: %v, want the circuit open (ErrUnavailable)", err)
	}
}

func TestResolveFindsChannelsByUnicodeHandleAndLegacyLink(t *testing.T) {
	s, c := world(t)
	ctx := context.Background()
	s.AddChannel(youtubetest.ChannelID(3), "@日本語チャンネル", "日本語")
	s.AddChannel(youtubetest.ChannelID(4), "@café", "Café")
	s.AddLegacyURL(youtubetest.ChannelID(1), "/c/GopherTalks")
	s.AddLegacyURL(youtubetest.ChannelID(4), "/user/cafe")
	for in, want := range map[string]string{
		"@日本語チャンネル":                          youtubetest.ChannelID(3),
		"https://www.youtube.com/@caf%C3%A9": youtubetest.ChannelID(4),
		"youtube.com/c/GopherTalks":          youtubetest.ChannelID(1),
		"https://www.youtube.com/user/cafe":  youtubetest.ChannelID(4),
	} {
		ref, err := youtube.Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		ch, err := c.Resolve(ctx, ref)
		if err != nil || ch.ID != want {
			t.Errorf("Resolve(%q) = %+v, %v; want %s", in, ch, err, want)
		}
	}
}
