package tracking_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"jetfleet/internal/tracking"
	"jetfleet/subjects"
)

func live(t *testing.T, s *tracking.Store) (chans, hourly, daily []string) {
	t.Helper()
	ctx := context.Background()
	var err error
	if chans, err = s.LiveChannels(ctx); err != nil {
		t.Fatal(err)
	}
	if hourly, err = s.LiveHourly(ctx); err != nil {
		t.Fatal(err)
	}
	if daily, err = s.LiveDaily(ctx); err != nil {
		t.Fatal(err)
	}
	slices.Sort(chans)
	slices.Sort(hourly)
	slices.Sort(daily)
	return chans, hourly, daily
}

// A channel's videos are sampled while someone tracks the channel or the
// video itself; when the last of them goes, the records and windows go and
// ticks stop scraping them.
func TestWhatNobodyTracksAnyMoreStopsBeingSampled(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.TrackChannel(ctx, "alice", true, subjects.TrackerChannel{ID: chanA, Title: "A"}))
	must(s.TrackChannel(ctx, "dave", true, subjects.TrackerChannel{ID: chanB, Title: "B"}))
	for _, v := range []subjects.TrackerVideo{{ID: "aaaaaaaaaa1", ChannelID: chanA}, {ID: "aaaaaaaaaa2", ChannelID: chanA}} {
		if _, err := s.SeeVideo(ctx, v, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// bob tracks one of A's videos himself; carol one of B's.
	if _, err := s.TrackVideo(ctx, "bob", true, subjects.TrackerVideo{ID: "aaaaaaaaaa2", ChannelID: chanA}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrackVideo(ctx, "carol", true, subjects.TrackerVideo{ID: "bbbbbbbbbb1", ChannelID: chanB}); err != nil {
		t.Fatal(err)
	}

	must(s.UntrackChannel(ctx, "alice", chanA))
	chans, hourly, daily := live(t, s)
	if !slices.Equal(chans, []string{chanB}) {
		t.Errorf("channels after A's last user left: %v", chans)
	}
	if want := []string{"aaaaaaaaaa2", "bbbbbbbbbb1"}; !slices.Equal(hourly, want) || !slices.Equal(daily, want) {
		t.Errorf("sampled after A's last user left: hourly %v daily %v, want %v (A's video bob tracks stays)", hourly, daily, want)
	}
	if _, err := s.Video(ctx, "aaaaaaaaaa1"); !errors.Is(err, tracking.ErrNotFound) {
		t.Errorf("record of a video nobody tracks: %v", err)
	}

	must(s.UntrackVideo(ctx, "bob", "aaaaaaaaaa2"))
	// carol leaves, but dave still tracks B: its video stays sampled.
	must(s.UntrackVideo(ctx, "carol", "bbbbbbbbbb1"))
	_, hourly, daily = live(t, s)
	if want := []string{"bbbbbbbbbb1"}; !slices.Equal(hourly, want) || !slices.Equal(daily, want) {
		t.Errorf("sampled after bob and carol left: hourly %v daily %v, want %v", hourly, daily, want)
	}
	if _, err := s.Video(ctx, "aaaaaaaaaa2"); !errors.Is(err, tracking.ErrNotFound) {
		t.Errorf("record of a video nobody tracks: %v", err)
	}
}

func TestForgetUserExportsThenRemovesEveryMappingAndSparesOthers(t *testing.T) {
	kv := bucket(t)
	s := tracking.New(kv, tracking.Options{})
	ctx := context.Background()
	if err := s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: chanA, Title: "Alpha"}); err != nil {
		t.Fatal(err)
	}
	if err := s.TrackChannel(ctx, "bob", false, subjects.TrackerChannel{ID: chanB, Title: "Beta"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := s.TrackVideo(ctx, u, false, subjects.TrackerVideo{ID: "vvvvvvvvvv1", Title: "Shared"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.TrackVideo(ctx, "alice", false, subjects.TrackerVideo{ID: "vvvvvvvvvv2", Title: "Alone"}); err != nil {
		t.Fatal(err)
	}

	d, err := s.PersonalDataOf(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Channels) != 1 || d.Channels[0].ID != chanA || d.Channels[0].Title != "Alpha" || d.Channels[0].Since.IsZero() {
		t.Errorf("exported channels %+v", d.Channels)
	}
	var vids []string
	for _, v := range d.Videos {
		vids = append(vids, v.ID+":"+v.Title)
	}
	slices.Sort(vids)
	if !slices.Equal(vids, []string{"vvvvvvvvvv1:Shared", "vvvvvvvvvv2:Alone"}) {
		t.Errorf("exported videos %v", vids)
	}
	if len(d.Credits) != 2 || d.Credits[0].Month == "" || d.Credits[0].Spent.IsZero() {
		t.Errorf("exported credits %+v", d.Credits)
	}

	// The weekly digest's preference and sent marks are the user's too.
	if err := s.SetDigest(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDigestSent(ctx, "alice", "20241202"); err != nil {
		t.Fatal(err)
	}

	if err := s.ForgetUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetUser(ctx, "alice"); err != nil {
		t.Fatalf("forgetting again: %v", err)
	}
	if d, err := s.PersonalDataOf(ctx, "alice"); err != nil || len(d.Channels)+len(d.Videos)+len(d.Credits) != 0 {
		t.Errorf("left after forgetting: %+v %v", d, err)
	}
	if l, err := kv.ListKeysFiltered(ctx, "user.alice.>"); err == nil {
		for k := range l.Keys() {
			t.Errorf("key %s left after forgetting alice", k)
		}
	}
	chans, hourly, _ := live(t, s)
	if !slices.Equal(chans, []string{chanB}) || !slices.Equal(hourly, []string{"vvvvvvvvvv1"}) {
		t.Errorf("after forgetting alice: channels %v, hourly %v; want bob's only", chans, hourly)
	}
	if d, _ := s.PersonalDataOf(ctx, "bob"); len(d.Channels) != 1 || len(d.Videos) != 1 || len(d.Credits) != 1 {
		t.Errorf("bob's data changed: %+v", d)
	}
}

// A premium user's high-resolution choices are theirs: exported with
// their window, removed when they are forgotten, while another user's
// choice of the same video stays.
func TestHighResolutionChoicesAreExportedAndForgotten(t *testing.T) {
	kv := bucket(t)
	s := tracking.New(kv, tracking.Options{})
	ctx := context.Background()
	published := time.Now().Add(-time.Hour)
	for _, u := range []string{"alice", "bob"} {
		if _, err := s.TrackVideo(ctx, u, true, subjects.TrackerVideo{ID: "vvvvvvvvvv1", Title: "Fresh", PublishedAt: published}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetHiRes(ctx, u, "vvvvvvvvvv1", true, true); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.PersonalDataOf(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.HiRes) != 1 || d.HiRes[0].VideoID != "vvvvvvvvvv1" || !d.HiRes[0].Until.Equal(published.Add(24*time.Hour)) {
		t.Fatalf("exported high-resolution choices %+v", d.HiRes)
	}
	if err := s.ForgetUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.HiRes(ctx, "alice", "vvvvvvvvvv1"); ok {
		t.Error("alice's high-resolution choice left after forgetting her")
	}
	if live, _ := s.LiveHiRes(ctx); !slices.Equal(live["vvvvvvvvvv1"], []string{"bob"}) {
		t.Errorf("high-resolution choices after forgetting alice: %v, want bob's", live)
	}
}
