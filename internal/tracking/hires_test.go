package tracking_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
)

// TestHighResolutionIsCappedPerUserEvenUnderParallelRequests: with a cap
// of 3, five parallel requests of one premium user turn exactly three
// videos on; the refusals say why; the same video again does not count
// twice; another user has their own cap; turning one off frees its place.
func TestHighResolutionIsCappedPerUserEvenUnderParallelRequests(t *testing.T) {
	s := tracking.New(bucket(t), tracking.Options{HiResPerUser: 3})
	ctx := testenv.Context(t, 30*time.Second)
	published := time.Now().Add(-time.Hour)
	vid := func(i int) string { return fmt.Sprintf("hires%06d", i) }
	for _, u := range []string{"alice", "bob"} {
		for i := range 6 {
			if _, err := s.TrackVideo(ctx, u, true, subjects.TrackerVideo{ID: vid(i), Title: "Fresh", PublishedAt: published}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		refused []error
		start   = make(chan struct{})
	)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.SetHiRes(ctx, "alice", vid(i), true, true)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, tracking.ErrHiResLimit):
				refused = append(refused, err)
			case err != nil:
				t.Errorf("high resolution of %s: %v", vid(i), err)
			}
		}()
	}
	close(start)
	wg.Wait()
	on, err := s.UserHiRes(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(on) != 3 || len(refused) != 2 {
		t.Fatalf("5 parallel requests with a cap of 3: %d on (%v), %d refused; want 3 and 2", len(on), on, len(refused))
	}
	if msg := refused[0].Error(); msg != "too many videos sampled at high resolution at once (3)" {
		t.Errorf("refusal says %q", msg)
	}
	if _, err := s.SetHiRes(ctx, "alice", on[0], true, true); err != nil {
		t.Errorf("a video already on, asked again: %v", err)
	}
	if _, err := s.SetHiRes(ctx, "bob", vid(5), true, true); err != nil {
		t.Errorf("bob's first video refused: %v", err)
	}
	if _, err := s.SetHiRes(ctx, "alice", vid(5), true, true); !errors.Is(err, tracking.ErrHiResLimit) {
		t.Fatalf("a fourth video: %v, want ErrHiResLimit", err)
	}
	if _, ok, _ := s.HiRes(ctx, "alice", vid(5)); ok {
		t.Error("a refused video's choice was kept")
	}
	if _, err := s.SetHiRes(ctx, "alice", on[0], true, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetHiRes(ctx, "alice", vid(5), true, true); err != nil {
		t.Errorf("after turning one off, another: %v", err)
	}
	if on, _ := s.UserHiRes(ctx, "alice"); len(on) != 3 {
		t.Errorf("alice has %d videos on, want 3", len(on))
	}
}
