package tracking_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func bucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	_, js := testenv.JetStream(t)
	for _, cfg := range subjects.KeyValues(subjects.Options{}) {
		if cfg.Bucket == subjects.TrackerBucket {
			kv, err := js.CreateKeyValue(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return kv
		}
	}
	t.Fatal("no tracker bucket declared")
	return nil
}

const (
	chanA = "UCaaaaaaaaaaaaaaaaaaaaaa"
	chanB = "UCbbbbbbbbbbbbbbbbbbbbbb"
)

func TestTwoUsersTrackingAChannelShareOneRecord(t *testing.T) {
	kv := bucket(t)
	s := tracking.New(kv, tracking.Options{})
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if err := s.TrackChannel(ctx, u, false, subjects.TrackerChannel{ID: chanA, Title: "A"}); err != nil {
			t.Fatal(err)
		}
	}
	live, _ := s.LiveChannels(ctx)
	if !slices.Equal(live, []string{chanA}) {
		t.Fatalf("live channels = %v, want one record", live)
	}
	users, _ := s.ChannelUsers(ctx, chanA)
	slices.Sort(users)
	if !slices.Equal(users, []string{"alice", "bob"}) {
		t.Fatalf("channel users = %v", users)
	}
	if err := s.UntrackChannel(ctx, "alice", chanA); err != nil {
		t.Fatal(err)
	}
	if live, _ := s.LiveChannels(ctx); len(live) != 1 {
		t.Fatalf("record went while bob still tracks it: %v", live)
	}
	s.UntrackChannel(ctx, "bob", chanA)
	if live, _ := s.LiveChannels(ctx); len(live) != 0 {
		t.Fatalf("record stays after its last user left: %v", live)
	}
}

func TestFreePlanCapsChannelsAndPremiumLiftsIt(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{FreeChannels: 1})
	ctx := context.Background()
	if err := s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: chanA}); err != nil {
		t.Fatal(err)
	}
	if err := s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: chanA}); err != nil {
		t.Fatalf("tracking the same channel again: %v", err)
	}
	if err := s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: chanB}); !errors.Is(err, tracking.ErrLimitReached) {
		t.Fatalf("second channel on free plan: %v, want ErrLimitReached", err)
	}
	if err := s.TrackChannel(ctx, "alice", true, subjects.TrackerChannel{ID: chanB}); err != nil {
		t.Fatalf("premium: %v", err)
	}
}

func TestTenVideoCreditsPerMonthOutsideOwnChannels(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC)}
	s := tracking.New(bucket(t), tracking.Options{Now: clk.now})
	ctx := context.Background()
	s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: chanA})
	vid := func(i int) string { return "video" + string(rune('a'+i)) + "00000" }
	for i := range 10 {
		used, err := s.TrackVideo(ctx, "alice", false, subjects.TrackerVideo{ID: vid(i), ChannelID: chanB})
		if err != nil || !used {
			t.Fatalf("video %d: used=%v err=%v", i, used, err)
		}
	}
	if _, err := s.TrackVideo(ctx, "alice", false, subjects.TrackerVideo{ID: vid(10), ChannelID: chanB}); !errors.Is(err, tracking.ErrLimitReached) {
		t.Fatalf("11th video in a month: %v, want ErrLimitReached", err)
	}
	if used, err := s.TrackVideo(ctx, "alice", false, subjects.TrackerVideo{ID: vid(11), ChannelID: chanA}); err != nil || used {
		t.Fatalf("video of own channel: used=%v err=%v, want free", used, err)
	}
	if _, err := s.TrackVideo(ctx, "alice", true, subjects.TrackerVideo{ID: vid(12), ChannelID: chanB}); err != nil {
		t.Fatalf("premium: %v", err)
	}
	clk.set(time.Date(2026, 4, 1, 0, 0, 1, 0, time.UTC))
	if used, err := s.TrackVideo(ctx, "alice", false, subjects.TrackerVideo{ID: vid(10), ChannelID: chanB}); err != nil || !used {
		t.Fatalf("first video of a new month: used=%v err=%v", used, err)
	}
	lim, _ := s.Limits(ctx, "alice", false)
	if lim.Credits != 1 || lim.MaxCreds != 10 || lim.Channels != 1 {
		t.Fatalf("limits = %+v", lim)
	}
}

func TestReadAuthorization(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{})
	ctx := context.Background()
	s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: chanA})
	s.SeeVideo(ctx, subjects.TrackerVideo{ID: "inchannelAA", ChannelID: chanA}, time.Now())
	s.TrackVideo(ctx, "bob", false, subjects.TrackerVideo{ID: "bobsvideo00", ChannelID: chanB})
	cases := []struct {
		user, video string
		want        bool
	}{
		{"alice", "inchannelAA", true},  // her channel's video
		{"bob", "inchannelAA", false},   // not his channel
		{"bob", "bobsvideo00", true},    // tracked individually
		{"alice", "bobsvideo00", false}, // someone else's
		{"alice", "nosuchvideo", false},
		{"alice", "bad.key.*", false},
	}
	for _, c := range cases {
		if got, err := s.CanSeeVideo(ctx, c.user, c.video); err != nil || got != c.want {
			t.Errorf("CanSeeVideo(%s, %s) = %v, %v; want %v", c.user, c.video, got, err, c.want)
		}
	}
	if ok, _ := s.CanSeeChannel(ctx, "bob", chanA); ok {
		t.Error("bob sees alice's channel")
	}
	if ok, _ := s.CanSeeChannel(ctx, "alice", chanA); !ok {
		t.Error("alice does not see her channel")
	}
}

func TestWindowsExpireMeasuredFromAnchor(t *testing.T) {
	kv := bucket(t)
	now := time.Now()
	s := tracking.New(kv, tracking.Options{Now: time.Now})
	ctx := context.Background()
	// Published almost 7 days ago: two seconds of hourly sampling left,
	// 53 days of daily sampling.
	anchor := now.Add(-subjects.TrackerHourlyWindow + 2*time.Second)
	created, err := s.SeeVideo(ctx, subjects.TrackerVideo{ID: "oldvideo000", ChannelID: chanA}, anchor)
	if err != nil || !created {
		t.Fatalf("see: %v %v", created, err)
	}
	// Published 61 days ago: no window at all.
	s.SeeVideo(ctx, subjects.TrackerVideo{ID: "ancient0000", ChannelID: chanA}, now.Add(-61*24*time.Hour))
	if created, _ := s.SeeVideo(ctx, subjects.TrackerVideo{ID: "oldvideo000"}, anchor); created {
		t.Fatal("second sighting created the record again")
	}
	hourly, _ := s.LiveHourly(ctx)
	daily, _ := s.LiveDaily(ctx)
	if !slices.Equal(hourly, []string{"oldvideo000"}) || !slices.Equal(daily, []string{"oldvideo000"}) {
		t.Fatalf("hourly %v daily %v", hourly, daily)
	}
	testenv.Eventually(t, 10*time.Second, "hourly window expires", func() bool {
		h, _ := s.LiveHourly(ctx)
		return len(h) == 0
	})
	if d, _ := s.LiveDaily(ctx); len(d) != 1 {
		t.Fatalf("daily window went with the hourly one: %v", d)
	}
}

func TestDailyWindowExpires(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{HourlyWindow: time.Second, DailyWindow: 2 * time.Second})
	ctx := context.Background()
	s.SeeVideo(ctx, subjects.TrackerVideo{ID: "shortlived0"}, time.Now())
	testenv.Eventually(t, 10*time.Second, "daily window expires", func() bool {
		d, _ := s.LiveDaily(ctx)
		return len(d) == 0
	})
	if _, err := s.Video(ctx, "shortlived0"); err != nil {
		t.Fatalf("record went with its windows: %v", err)
	}
}

func TestYouTubeRefusalIsRecordedForThePages(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
	s := tracking.New(bucket(t), tracking.Options{Now: clk.now})
	if st, err := s.YouTubeStatus(ctx); err != nil || !st.RefusedAt.IsZero() {
		t.Fatalf("status before any refusal = %+v, %v; want zero", st, err)
	}
	if err := s.NoteRefusal(ctx, "bot_check", "Sign in to confirm you’re not a bot"); err != nil {
		t.Fatal(err)
	}
	st, err := s.YouTubeStatus(ctx)
	if err != nil || !st.RefusedAt.Equal(clk.now()) || st.Kind != "bot_check" || st.Reason != "Sign in to confirm you’re not a bot" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	// The status key is no channel or video: listings do not see it.
	if ids, _ := s.LiveChannels(ctx); len(ids) != 0 {
		t.Fatalf("live channels = %v", ids)
	}
}

// trackInParallel runs track(i) for i in [0, n) at once and returns how
// many calls were refused with ErrLimitReached; any other error fails t.
func trackInParallel(t *testing.T, n int, track func(i int) error) (refused int) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		start = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := track(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, tracking.ErrLimitReached):
				refused++
			case err != nil:
				t.Errorf("track %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	return refused
}

func TestParallelChannelTracksOnAFreeAccountStopAtTheLimit(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{})
	ctx := testenv.Context(t, 30*time.Second)
	refused := trackInParallel(t, 20, func(i int) error {
		return s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: fmt.Sprintf("UC%022d", i)})
	})
	chans, err := s.UserChannels(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	lim, err := s.Limits(ctx, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 3 || refused != 17 || lim.Channels != 3 {
		t.Fatalf("20 parallel tracks: %d channels tracked, %d refused, limits count %d; want exactly 3, 17, 3", len(chans), refused, lim.Channels)
	}
}

func TestParallelVideoTracksOnAFreeAccountSpendExactlyTheMonthlyCredits(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{})
	ctx := testenv.Context(t, 30*time.Second)
	var mu sync.Mutex
	credits := 0
	refused := trackInParallel(t, 20, func(i int) error {
		used, err := s.TrackVideo(ctx, "alice", false, subjects.TrackerVideo{ID: fmt.Sprintf("video%06d", i), ChannelID: chanA})
		if used {
			mu.Lock()
			credits++
			mu.Unlock()
		}
		return err
	})
	vids, err := s.UserVideos(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	lim, err := s.Limits(ctx, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(vids) != 10 || refused != 10 || credits != 10 || lim.Credits != 10 {
		t.Fatalf("20 parallel tracks: %d videos tracked, %d refused, %d credits spent, limits count %d; want exactly 10 of each",
			len(vids), refused, credits, lim.Credits)
	}
}

func TestUntrackingAChannelFreesItsPlaceAndPremiumChannelsCountAfterADowngrade(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{FreeChannels: 1})
	ctx := context.Background()
	if err := s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: chanA}); err != nil {
		t.Fatal(err)
	}
	if err := s.UntrackChannel(ctx, "alice", chanA); err != nil {
		t.Fatal(err)
	}
	if err := s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: chanB}); err != nil {
		t.Fatalf("after untracking the only channel: %v", err)
	}
	if err := s.TrackChannel(ctx, "bob", true, subjects.TrackerChannel{ID: chanA}); err != nil {
		t.Fatal(err)
	}
	if err := s.TrackChannel(ctx, "bob", false, subjects.TrackerChannel{ID: chanB}); !errors.Is(err, tracking.ErrLimitReached) {
		t.Fatalf("free again with a channel tracked while premium: %v, want ErrLimitReached", err)
	}
}
