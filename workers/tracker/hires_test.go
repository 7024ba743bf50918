package tracker_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/testenv"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
	"jetfleet/workers/tracker"
)

// hiResEnv adds two users to e: alice (premium) and bob (free), and a
// video of each published an hour ago.
func hiResEnv(t *testing.T) (e *env, users *accounts.Store, alice, bob accounts.User) {
	e = newEnv(t)
	users, err := accounts.Open(e.ctx, e.js, accounts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if alice, err = users.EnsureUser(e.ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if alice, err = users.SetPremium(e.ctx, alice.Email, true); err != nil {
		t.Fatal(err)
	}
	if bob, err = users.EnsureUser(e.ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	e.yt.AddChannel(chanA, "", "Channel A")
	for _, id := range []string{"hires000001", "hires000002"} {
		published := time.Now().Add(-time.Hour)
		e.yt.AddVideo(chanA, id, "Video "+id, published, 100)
		if _, err := e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: id, ChannelID: chanA, PublishedAt: published}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return e, users, alice, bob
}

// hiResTick publishes one high-resolution tick and returns it as the
// tracker-hires consumer would receive it.
func (e *env) hiResTick() jetstream.Msg {
	e.t.Helper()
	e.tick(subjects.TrackerVideoHiResTick)
	cons, err := e.js.OrderedConsumer(e.ctx, subjects.SchedulesStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects.ScheduleTick(subjects.TrackerVideoHiResTick)}})
	if err != nil {
		e.t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	return msg
}

// queued lists the jobs waiting on TRACK.
func (e *env) queued() []subjects.TrackerJob {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, subjects.TrackerStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, _ := s.Info(e.ctx)
	var out []subjects.TrackerJob
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(e.ctx, seq)
		if err != nil {
			continue
		}
		var j subjects.TrackerJob
		if err := json.Unmarshal(m.Data, &j); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, j)
	}
	return out
}

func TestFreeUserCannotTurnOnHighResolution(t *testing.T) {
	e, _, _, bob := hiResEnv(t)
	_, err := e.store.SetHiRes(e.ctx, bob.ID, "hires000001", false, true)
	if !errors.Is(err, tracking.ErrPremiumOnly) {
		t.Fatalf("free user turning high resolution on: err = %v, want ErrPremiumOnly", err)
	}
	if _, ok, _ := e.store.HiRes(e.ctx, bob.ID, "hires000001"); ok {
		t.Fatal("a free user's high-resolution choice was stored")
	}
}

func TestHighResolutionTickHandledTwiceEnqueuesOneJobAndWritesOneSample(t *testing.T) {
	e, users, alice, _ := hiResEnv(t)
	if _, err := e.store.SetHiRes(e.ctx, alice.ID, "hires000001", true, true); err != nil {
		t.Fatal(err)
	}
	msg := e.hiResTick()
	h := tracker.NewHiRes(tracker.NewTicks(e.js, e.store, tracker.Slots{}, 0, quiet), e.store, users, quiet)
	for range 2 {
		if err := h.Handle(e.ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	jobs := e.queued()
	if len(jobs) != 1 || jobs[0].ID != "hires000001" || jobs[0].Kind != subjects.TrackerKindHiRes {
		t.Fatalf("TRACK after the tick was handled twice = %+v, want one hires job for hires000001 (not the video nobody chose)", jobs)
	}
	if slot := jobs[0].Slot; !slot.Equal(slot.Truncate(subjects.TrackerHiResEvery)) {
		t.Fatalf("job slot %v is not on the 2-minute grid", slot)
	}
	// The hourly tick's job for the same instant is another message, but
	// the same sample: replaying a slot stores one row.
	e.job(subjects.TrackerKindHourly, "hires000001", jobs[0].Slot)
	e.start("videos")
	testenv.Eventually(t, 20*time.Second, "queue drained and the sample stored", func() bool {
		s, _ := e.js.Stream(e.ctx, subjects.TrackerStream)
		i, _ := s.Info(e.ctx)
		return i.State.Msgs == 0 && e.count("SELECT count() FROM video_samples WHERE video_id = 'hires000001'") >= 1
	})
	if n := e.count("SELECT count() FROM video_samples FINAL WHERE video_id = 'hires000001'"); n != 1 {
		t.Fatalf("%d samples for one slot, want 1", n)
	}
	// What a sample costs at YouTube: one watch page per job (and one
	// small thumbnail), whatever the kind.
	if w := e.yt.Requests("watch", "hires000001"); w != 2 {
		t.Fatalf("two jobs fetched the watch page %d times, want 2", w)
	}
}

func TestHighResolutionRoleSamplesEveryTickOnTheVideoCurve(t *testing.T) {
	e, _, alice, _ := hiResEnv(t)
	if _, err := e.store.SetHiRes(e.ctx, alice.ID, "hires000001", true, true); err != nil {
		t.Fatal(err)
	}
	e.start("hires", "videos")
	// Two ticks in two slots (the test's slots are a second) make two
	// points of the curve, as two 2-minute ticks do in production.
	e.tick(subjects.TrackerVideoHiResTick)
	testenv.Eventually(t, 20*time.Second, "first high-resolution sample", func() bool {
		return e.count("SELECT count() FROM video_samples FINAL WHERE video_id = 'hires000001'") == 1
	})
	e.yt.AddViews("hires000001", 40)
	testenv.Eventually(t, 20*time.Second, "second high-resolution sample", func() bool {
		e.tick(subjects.TrackerVideoHiResTick)
		return e.count("SELECT count() FROM video_samples FINAL WHERE video_id = 'hires000001'") >= 2
	})
	if n := e.count("SELECT count() FROM video_samples FINAL WHERE video_id = 'hires000002'"); n != 0 {
		t.Fatalf("video nobody chose high resolution for was sampled %d times", n)
	}
	if n := e.count("SELECT max(views) FROM video_samples FINAL WHERE video_id = 'hires000001'"); n != 140 {
		t.Fatalf("latest high-resolution sample has %d views, want 140", n)
	}
}

func TestHighResolutionStopsWhenPremiumEnds(t *testing.T) {
	e, users, alice, _ := hiResEnv(t)
	if _, err := e.store.SetHiRes(e.ctx, alice.ID, "hires000001", true, true); err != nil {
		t.Fatal(err)
	}
	if _, err := users.SetPremium(e.ctx, alice.Email, false); err != nil {
		t.Fatal(err)
	}
	h := tracker.NewHiRes(tracker.NewTicks(e.js, e.store, tracker.Slots{}, 0, quiet), e.store, users, quiet)
	if err := h.Handle(e.ctx, e.hiResTick()); err != nil {
		t.Fatal(err)
	}
	if jobs := e.queued(); len(jobs) != 0 {
		t.Fatalf("jobs enqueued for a user whose premium ended: %+v", jobs)
	}
	if _, ok, _ := e.store.HiRes(e.ctx, alice.ID, "hires000001"); ok {
		t.Fatal("the choice of a user no longer premium is still shown as on")
	}
}

func TestHighResolutionEndsWithTheVideosFirst24Hours(t *testing.T) {
	e, _, alice, _ := hiResEnv(t)
	old := time.Now().Add(-25 * time.Hour)
	e.yt.AddVideo(chanA, "hiresold001", "Old", old, 100)
	if _, err := e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "hiresold001", ChannelID: chanA, PublishedAt: old}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.SetHiRes(e.ctx, alice.ID, "hiresold001", true, true); !errors.Is(err, tracking.ErrHiResOver) {
		t.Fatalf("high resolution for a video past its first 24 hours: err = %v", err)
	}
	// A video 3 seconds from the end of its window: the choice expires
	// with it (per-key TTL), nobody has to remove it.
	ending := time.Now().Add(-subjects.TrackerHiResWindow + 3*time.Second)
	e.yt.AddVideo(chanA, "hiresend001", "Ending", ending, 100)
	if _, err := e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "hiresend001", ChannelID: chanA, PublishedAt: ending}, time.Now()); err != nil {
		t.Fatal(err)
	}
	rec, err := e.store.SetHiRes(e.ctx, alice.ID, "hiresend001", true, true)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Until.Equal(ending.Add(subjects.TrackerHiResWindow).UTC()) {
		t.Fatalf("until = %v, want the end of the first 24 hours", rec.Until)
	}
	testenv.Eventually(t, 20*time.Second, "choice expired with the window", func() bool {
		live, err := e.store.LiveHiRes(e.ctx)
		return err == nil && len(live["hiresend001"]) == 0
	})
}
