package tracking_test

import (
	"context"
	"slices"
	"testing"

	"jetfleet/internal/tracking"
	"jetfleet/subjects"
)

func TestUsersListsEveryoneTrackingAChannelOrAVideoOnce(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{})
	ctx := context.Background()
	if err := s.TrackChannel(ctx, "alice", false, subjects.TrackerChannel{ID: chanA}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrackVideo(ctx, "alice", false, subjects.TrackerVideo{ID: "vvvvvvvvvv1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrackVideo(ctx, "bob", false, subjects.TrackerVideo{ID: "vvvvvvvvvv2"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("users = %v, want [alice bob]", got)
	}
	chans, vids, err := s.TrackedIDs(ctx, "alice")
	if err != nil || !chans[chanA] || !vids["vvvvvvvvvv1"] || vids["vvvvvvvvvv2"] {
		t.Errorf("alice tracks channels %v, videos %v (%v)", chans, vids, err)
	}
}

func TestDigestSentMarkIsPerUserAndWeek(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{})
	ctx := context.Background()
	if err := s.MarkDigestSent(ctx, "alice", "20241202"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDigestSent(ctx, "alice", "20241202"); err != nil {
		t.Fatalf("marking again: %v", err)
	}
	for _, c := range []struct {
		uid, week string
		want      bool
	}{{"alice", "20241202", true}, {"alice", "20241209", false}, {"bob", "20241202", false}} {
		if got, err := s.DigestSent(ctx, c.uid, c.week); err != nil || got != c.want {
			t.Errorf("DigestSent(%s, %s) = %v, %v; want %v", c.uid, c.week, got, err, c.want)
		}
	}
}
