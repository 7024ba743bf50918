package tracker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/blob"
	"jetfleet/internal/testenv"
	"jetfleet/internal/tracking"
	"jetfleet/internal/youtube"
	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/tracker"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) { testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c }) }

type env struct {
	t     *testing.T
	ctx   context.Context
	js    jetstream.JetStream
	conn  driver.Conn
	yt    *youtubetest.Server
	store *tracking.Store
	blobs blob.Store
	log   *slog.Logger // of the roles; quiet unless a test sets it
}

var quiet = slog.New(slog.DiscardHandler)

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := testenv.Context(t, 60*time.Second)
	_, js := testenv.JetStream(t)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), quiet); err != nil {
		t.Fatal(err)
	}
	store, err := tracking.Open(ctx, js, tracking.Options{})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := blob.NewURLSigner([]byte(strings.Repeat("s", 32)))
	blobs, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, "http://localhost")
	if err != nil {
		t.Fatal(err)
	}
	yt := youtubetest.New(youtubetest.Options{})
	yt.Start()
	t.Cleanup(yt.Close)
	return &env{t: t, ctx: ctx, js: js, conn: conn, yt: yt, store: store, blobs: blobs, log: quiet}
}

// start runs the given tracker roles ("ticks", "channels", "videos") as
// Roles declares them until the test ends.
func (e *env) start(roles ...string) {
	client, err := youtube.New(youtube.Config{BaseURL: e.yt.URL(), ThumbnailURL: e.yt.URL(), RetryMin: time.Millisecond, Attempts: 2})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := tracker.Config{
		Slots: tracker.Slots{Channel: time.Second, Hourly: time.Second, Daily: time.Second, HiRes: time.Second}, VideoConcurrency: 32,
		YouTube: func(prometheus.Registerer) (*youtube.Client, error) { return client, nil },
	}
	var run []consume.Role
	for _, r := range tracker.Roles(cfg) {
		if slices.Contains(roles, strings.TrimPrefix(r.Name, "tracker-")) {
			run = append(run, r)
		}
	}
	if len(run) != len(roles) {
		e.t.Fatalf("roles %v: tracker.Roles has %d of them", roles, len(run))
	}
	m := consume.NewMetrics(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d := consume.Deps{JS: e.js, ClickHouse: e.conn, Blobs: e.blobs, Log: e.log}
		if err := consume.RunRoles(ctx, run, d, m); err != nil {
			e.t.Errorf("roles %v: %v", roles, err)
		}
	}()
	e.t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (e *env) tick(schedule string) {
	e.t.Helper()
	b, _ := json.Marshal(subjects.Tick{Schedule: schedule})
	if _, err := e.js.Publish(e.ctx, subjects.ScheduleTick(schedule), b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) job(kind, id string, slot time.Time) {
	e.t.Helper()
	b, _ := json.Marshal(subjects.TrackerJob{Kind: kind, ID: id, Slot: slot})
	subject := subjects.TrackerVideoJob(id)
	if kind == subjects.TrackerKindChannel {
		subject = subjects.TrackerChannelJob(id)
	}
	m := &nats.Msg{Subject: subject, Data: b, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, subjects.TrackerJobID(kind, id, slot))
	if _, err := e.js.PublishMsg(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) count(query string, args ...any) uint64 {
	e.t.Helper()
	var n uint64
	if err := e.conn.QueryRow(e.ctx, query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

var (
	chanA = youtubetest.ChannelID(1)
	chanB = youtubetest.ChannelID(2)
)

func TestTwoUsersTrackingAChannelCauseOneFeedFetchPerTick(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	e.yt.AddChannel(chanA, "@a", "Channel A")
	e.yt.AddVideo(chanA, "old00000000", "Old upload", now.Add(-90*24*time.Hour), 10)
	e.yt.AddVideo(chanA, "recent00000", "Recent upload", now.Add(-2*24*time.Hour), 10)
	for _, u := range []string{"alice", "bob"} {
		if err := e.store.TrackChannel(e.ctx, u, false, subjects.TrackerChannel{ID: chanA, Title: "Channel A"}); err != nil {
			t.Fatal(err)
		}
	}
	e.start("ticks", "channels")
	e.tick(subjects.TrackerChannelTick)
	testenv.Eventually(t, 20*time.Second, "channel checked", func() bool {
		c, err := e.store.Channel(e.ctx, chanA)
		return err == nil && !c.Checked.IsZero()
	})
	if n := e.yt.Requests("feed", chanA); n != 1 {
		t.Fatalf("feed fetched %d times for one tick, want 1", n)
	}
	c, _ := e.store.Channel(e.ctx, chanA)
	if c.LatestVideoID != "recent00000" {
		t.Fatalf("latest video = %q", c.LatestVideoID)
	}
	hourly, _ := e.store.LiveHourly(e.ctx)
	if len(hourly) != 1 || hourly[0] != "recent00000" {
		t.Fatalf("hourly windows = %v; want only the upload younger than 7 days", hourly)
	}

	// A new upload is picked up by the next check.
	e.yt.AddVideo(chanA, "brandnew000", "Brand new", time.Now(), 0)
	checked := c.Checked
	// The next hour's check (a tick in the same slot would be a duplicate).
	e.job(subjects.TrackerKindChannel, chanA, time.Now().Add(time.Hour))
	testenv.Eventually(t, 20*time.Second, "channel checked again", func() bool {
		c, err := e.store.Channel(e.ctx, chanA)
		return err == nil && c.Checked.After(checked)
	})
	c, _ = e.store.Channel(e.ctx, chanA)
	if c.LatestVideoID != "brandnew000" {
		t.Fatalf("latest video after upload = %q", c.LatestVideoID)
	}
	if _, err := e.store.Video(e.ctx, "brandnew000"); err != nil {
		t.Fatalf("new upload has no tracking record: %v", err)
	}
}

func TestTickHandledTwiceStoresNoDuplicateSamples(t *testing.T) {
	e := newEnv(t)
	e.yt.AddChannel(chanA, "", "Channel A")
	ids := []string{"vid00000001", "vid00000002", "vid00000003"}
	for _, id := range ids {
		e.yt.AddVideo(chanA, id, "Video "+id, time.Now().Add(-time.Hour), 100)
		if _, err := e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: id, ChannelID: chanA}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e.tick(subjects.TrackerVideoHourlyTick)

	// Handle the same tick message twice, as a redelivery would.
	cons, err := e.js.OrderedConsumer(e.ctx, subjects.SchedulesStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects.ScheduleTick(subjects.TrackerVideoHourlyTick)}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ticks := tracker.NewTicks(e.js, e.store, tracker.Slots{}, 0, quiet)
	for range 2 {
		if err := ticks.Handle(e.ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	info, _ := e.js.Stream(e.ctx, subjects.TrackerStream)
	if n := info.CachedInfo().State.Msgs; n != uint64(len(ids)) {
		t.Fatalf("TRACK holds %d jobs after the tick was handled twice, want %d", n, len(ids))
	}

	e.start("videos")
	testenv.Eventually(t, 20*time.Second, "every video sampled", func() bool {
		return e.count("SELECT count() FROM video_samples") >= uint64(len(ids))
	})
	// Give a duplicate the chance to show up: wait for the queue to drain.
	testenv.Eventually(t, 10*time.Second, "queue drained", func() bool {
		s, _ := e.js.Stream(e.ctx, subjects.TrackerStream)
		i, _ := s.Info(e.ctx)
		return i.State.Msgs == 0
	})
	if n := e.count("SELECT count() FROM video_samples"); n != uint64(len(ids)) {
		t.Fatalf("%d samples, want %d", n, len(ids))
	}
	if n := e.count("SELECT count() FROM video_samples WHERE views = 100 AND title = 'Video vid00000002'"); n != 1 {
		t.Fatalf("sample of vid00000002 not as scraped (%d rows)", n)
	}
}

func TestUnparseableWatchPageIsDeadLetteredNotZero(t *testing.T) {
	e := newEnv(t)
	e.yt.AddChannel(chanA, "", "Channel A")
	e.yt.AddVideo(chanA, "broken00000", "Broken", time.Now(), 100)
	e.yt.AddVideo(chanA, "healthy0000", "Healthy", time.Now(), 100)
	for _, id := range []string{"broken00000", "healthy0000"} {
		e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: id, ChannelID: chanA}, time.Now())
	}
	e.yt.BreakWatchPage("broken00000", true)
	e.start("videos")
	slot := time.Now().Truncate(time.Second)
	e.job(subjects.TrackerKindHourly, "broken00000", slot)
	e.job(subjects.TrackerKindHourly, "healthy0000", slot)

	var dead *jetstream.RawStreamMsg
	testenv.Eventually(t, 20*time.Second, "broken page dead-lettered", func() bool {
		s, err := e.js.Stream(e.ctx, subjects.DLQStream)
		if err != nil {
			return false
		}
		dead, err = s.GetLastMsgForSubject(e.ctx, subjects.DLQ(subjects.TrackerStream, subjects.TrackerVideoConsumer))
		return err == nil
	})
	if reason := dead.Header.Get(subjects.HeaderDLQError); !strings.Contains(reason, "not understood") {
		t.Fatalf("DLQ reason = %q", reason)
	}
	if dead.Header.Get(subjects.HeaderDLQSubject) != subjects.TrackerVideoJob("broken00000") {
		t.Fatalf("DLQ subject header = %q", dead.Header.Get(subjects.HeaderDLQSubject))
	}
	testenv.Eventually(t, 20*time.Second, "healthy video sampled", func() bool {
		return e.count("SELECT count() FROM video_samples WHERE video_id = 'healthy0000'") == 1
	})
	if n := e.count("SELECT count() FROM video_samples WHERE video_id = 'broken00000'"); n != 0 {
		t.Fatalf("broken page produced %d samples", n)
	}
}

func TestThumbnailAndTitleChangesAreStoredAndRecorded(t *testing.T) {
	e := newEnv(t)
	e.yt.AddChannel(chanB, "", "Channel B")
	e.yt.AddVideo(chanB, "changing000", "Before", time.Now(), 100)
	e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "changing000", ChannelID: chanB}, time.Now())
	e.start("videos")

	t0 := time.Now().Truncate(time.Second)
	e.job(subjects.TrackerKindHourly, "changing000", t0)
	var first subjects.TrackerVideo
	testenv.Eventually(t, 20*time.Second, "first sample", func() bool {
		first, _ = e.store.Video(e.ctx, "changing000")
		return first.ThumbHash != ""
	})
	for _, high := range []bool{false, true} {
		if _, err := e.blobs.Stat(e.ctx, tracking.ThumbKey("changing000", first.ThumbHash, high)); err != nil {
			t.Fatalf("first-sight thumbnail (high=%v) not stored: %v", high, err)
		}
	}

	e.yt.ChangeThumbnail("changing000")
	e.yt.SetTitle("changing000", "After")
	e.yt.AddViews("changing000", 50)
	e.job(subjects.TrackerKindHourly, "changing000", t0.Add(time.Hour))
	var second subjects.TrackerVideo
	testenv.Eventually(t, 20*time.Second, "second sample", func() bool {
		second, _ = e.store.Video(e.ctx, "changing000")
		return second.Title == "After"
	})
	if second.ThumbHash == first.ThumbHash || second.Views != 150 {
		t.Fatalf("record after change = %+v", second)
	}
	if _, err := e.blobs.Stat(e.ctx, tracking.ThumbKey("changing000", second.ThumbHash, true)); err != nil {
		t.Fatalf("changed thumbnail not stored: %v", err)
	}
	if n := e.count("SELECT count() FROM video_changes WHERE kind = 'thumbnail' AND before = ? AND after = ?", first.ThumbHash, second.ThumbHash); n != 1 {
		t.Fatalf("thumbnail change rows = %d", n)
	}
	if n := e.count("SELECT count() FROM video_changes WHERE kind = 'title' AND before = 'Before' AND after = 'After'"); n != 1 {
		t.Fatalf("title change rows = %d", n)
	}
	if n := e.count("SELECT count() FROM video_samples WHERE video_id = 'changing000'"); n != 2 {
		t.Fatalf("samples = %d, want 2", n)
	}
}

func TestUnknownVideoIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "gone0000000"}, time.Now())
	e.start("videos")
	e.job(subjects.TrackerKindHourly, "gone0000000", time.Now())
	testenv.Eventually(t, 20*time.Second, "unknown video dead-lettered", func() bool {
		s, err := e.js.Stream(e.ctx, subjects.DLQStream)
		if err != nil {
			return false
		}
		m, err := s.GetLastMsgForSubject(e.ctx, subjects.DLQ(subjects.TrackerStream, subjects.TrackerVideoConsumer))
		return err == nil && strings.Contains(m.Header.Get(subjects.HeaderDLQError), "not found")
	})
}

func TestDailyTickSkipsVideosStillSampledHourly(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	// One video in its first week (hourly and daily windows), one older
	// (daily window only).
	e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "youngvideo0"}, now)
	e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "oldervideo0"}, now.Add(-10*24*time.Hour))
	e.tick(subjects.TrackerVideoDailyTick)
	cons, err := e.js.OrderedConsumer(e.ctx, subjects.SchedulesStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects.ScheduleTick(subjects.TrackerVideoDailyTick)}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := tracker.NewTicks(e.js, e.store, tracker.Slots{}, 0, quiet).Handle(e.ctx, msg); err != nil {
		t.Fatal(err)
	}
	s, _ := e.js.Stream(e.ctx, subjects.TrackerStream)
	if _, err := s.GetLastMsgForSubject(e.ctx, subjects.TrackerVideoJob("oldervideo0")); err != nil {
		t.Fatalf("older video not enqueued by the daily tick: %v", err)
	}
	if _, err := s.GetLastMsgForSubject(e.ctx, subjects.TrackerVideoJob("youngvideo0")); err == nil {
		t.Fatal("video still in its hourly window enqueued by the daily tick")
	}
	m, _ := s.GetLastMsgForSubject(e.ctx, subjects.TrackerVideoJob("oldervideo0"))
	want := subjects.TrackerJobID(subjects.TrackerKindDaily, "oldervideo0", msgTime(t, msg).Truncate(24*time.Hour))
	if got := m.Header.Get(jetstream.MsgIDHeader); got != want {
		t.Fatalf("job id %q, want %q", got, want)
	}
}

func msgTime(t *testing.T, m jetstream.Msg) time.Time {
	md, err := m.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	return md.Timestamp
}

// deadLettered returns the reason of the last video or channel job in the
// DLQ, or "".
func (e *env) deadLettered(consumer string) string {
	s, err := e.js.Stream(e.ctx, subjects.DLQStream)
	if err != nil {
		return ""
	}
	m, err := s.GetLastMsgForSubject(e.ctx, subjects.DLQ(subjects.TrackerStream, consumer))
	if err != nil {
		return ""
	}
	return m.Header.Get(subjects.HeaderDLQError)
}

func TestBotCheckIsRetriedAndShownNotDeadLetteredAsNotFound(t *testing.T) {
	e := newEnv(t)
	e.yt.AddChannel(chanA, "", "Channel A")
	e.yt.AddVideo(chanA, "refused0000", "Refused", time.Now(), 100)
	e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "refused0000", ChannelID: chanA}, time.Now())
	e.yt.Refuse(youtubetest.RefuseBotCheck)
	e.start("videos")
	e.job(subjects.TrackerKindHourly, "refused0000", time.Now().Truncate(time.Second))

	testenv.EventuallyState(t, 20*time.Second, "the refusal recorded for the pages", func() (bool, any) {
		st, err := e.store.YouTubeStatus(e.ctx)
		return err == nil && st.Kind == string(youtube.RefusedBotCheck), st
	})
	if reason := e.deadLettered(subjects.TrackerVideoConsumer); reason != "" {
		t.Fatalf("bot check dead-lettered the job: %q", reason)
	}
	// YouTube lets us in again: the retried job stores its sample.
	e.yt.Refuse(youtubetest.RefuseNone)
	testenv.EventuallyState(t, 20*time.Second, "sample stored once YouTube stops refusing", func() (bool, any) {
		n := e.count("SELECT count() FROM video_samples WHERE video_id = 'refused0000'")
		return n == 1, fmt.Sprintf("%d samples, DLQ %q", n, e.deadLettered(subjects.TrackerVideoConsumer))
	})
}

func TestHiddenVideoStateIsShownNotDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.yt.AddChannel(chanA, "", "Channel A")
	e.yt.AddVideo(chanA, "private0000", "Private", time.Now(), 100)
	e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "private0000", ChannelID: chanA}, time.Now())
	e.yt.SetState("private0000", youtubetest.StatePrivate)
	e.start("videos")
	t0 := time.Now().Truncate(time.Second)
	e.job(subjects.TrackerKindHourly, "private0000", t0)
	testenv.EventuallyState(t, 20*time.Second, "the video's state recorded", func() (bool, any) {
		r, _ := e.store.Video(e.ctx, "private0000")
		return r.State == "private", r
	})
	if reason := e.deadLettered(subjects.TrackerVideoConsumer); reason != "" {
		t.Fatalf("private video dead-lettered: %q", reason)
	}
	if n := e.count("SELECT count() FROM video_samples WHERE video_id = 'private0000'"); n != 0 {
		t.Fatalf("private video produced %d samples", n)
	}
	// Public again: the next sample clears the state.
	e.yt.SetState("private0000", youtubetest.StatePublic)
	e.job(subjects.TrackerKindHourly, "private0000", t0.Add(time.Hour))
	testenv.EventuallyState(t, 20*time.Second, "state cleared by the next sample", func() (bool, any) {
		r, _ := e.store.Video(e.ctx, "private0000")
		return r.State == "" && !r.Sampled.IsZero(), r
	})
}

func TestLikesAreStoredWithTheSample(t *testing.T) {
	e := newEnv(t)
	e.yt.AddChannel(chanA, "", "Channel A")
	e.yt.AddVideo(chanA, "liked000000", "Liked", time.Now(), 1000)
	e.yt.SetLikes("liked000000", 77)
	e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "liked000000", ChannelID: chanA}, time.Now())
	e.start("videos")
	e.job(subjects.TrackerKindHourly, "liked000000", time.Now().Truncate(time.Second))
	// The sample (ClickHouse) and the record (KV) are written by different
	// paths, in no promised order: wait for both.
	testenv.EventuallyState(t, 20*time.Second, "sample and record with likes", func() (bool, any) {
		n := e.count("SELECT count() FROM video_samples WHERE video_id = 'liked000000' AND likes = 77")
		r, _ := e.store.Video(e.ctx, "liked000000")
		return n == 1 && r.Likes == 77, fmt.Sprintf("samples with likes %d, record likes %d", n, r.Likes)
	})
}

func TestFeedOutageOfATrackedChannelIsRetriedAndKeepsLastCheckedHonest(t *testing.T) {
	e := newEnv(t)
	e.yt.AddChannel(chanA, "", "Channel A")
	e.yt.AddVideo(chanA, "upload00000", "Upload", time.Now().Add(-time.Hour), 10)
	if err := e.store.TrackChannel(e.ctx, "alice", false, subjects.TrackerChannel{ID: chanA, Title: "Channel A"}); err != nil {
		t.Fatal(err)
	}
	e.yt.FailFeeds(true)
	e.start("channels")
	e.job(subjects.TrackerKindChannel, chanA, time.Now().Truncate(time.Second))
	testenv.EventuallyState(t, 20*time.Second, "failed check recorded", func() (bool, any) {
		c, _ := e.store.Channel(e.ctx, chanA)
		return !c.Failed.IsZero(), c
	})
	c, _ := e.store.Channel(e.ctx, chanA)
	if !c.Checked.IsZero() || c.Failure == "" {
		t.Fatalf("channel after a failed check = %+v; want no last check and a failure", c)
	}
	if reason := e.deadLettered(subjects.TrackerChannelConsumer); reason != "" {
		t.Fatalf("feed outage dead-lettered the check: %q", reason)
	}
	e.yt.FailFeeds(false)
	testenv.EventuallyState(t, 20*time.Second, "the retried check succeeds", func() (bool, any) {
		c, _ := e.store.Channel(e.ctx, chanA)
		return !c.Checked.IsZero() && c.Failed.IsZero() && c.LatestVideoID == "upload00000", c
	})
}

func TestTickLogsOneInfoSummaryAndJobsLogAtDebug(t *testing.T) {
	e := newEnv(t)
	var logs testenv.Buffer
	e.log = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.yt.AddChannel(chanA, "", "Channel A")
	for i := range 3 {
		e.yt.AddVideo(chanA, youtubetest.VideoID(i), "Upload", time.Now().Add(-time.Hour), 10)
	}
	if err := e.store.TrackChannel(e.ctx, "alice", false, subjects.TrackerChannel{ID: chanA}); err != nil {
		t.Fatal(err)
	}
	e.start("ticks", "channels")
	e.tick(subjects.TrackerChannelTick)
	testenv.EventuallyState(t, 20*time.Second, "channel checked", func() (bool, any) {
		c, _ := e.store.Channel(e.ctx, chanA)
		return !c.Checked.IsZero(), c
	})
	info := map[string]int{}
	debug := map[string]int{}
	for line := range strings.Lines(logs.String()) {
		var l struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch {
		case l.Level == "INFO" && !strings.HasPrefix(l.Msg, "consumer "):
			info[l.Msg]++
		case l.Level == "DEBUG":
			debug[l.Msg]++
		}
	}
	if len(info) != 1 || info["tick enqueued"] != 1 {
		t.Fatalf("INFO lines of one tick and its jobs = %v; want only one \"tick enqueued\"", info)
	}
	if debug["tick"] != 1 || debug["new upload tracked"] != 3 {
		t.Fatalf("DEBUG lines = %v; want the tick and each new upload", debug)
	}
}

func TestAgeGatedVideoIsSampledAndItsStateShown(t *testing.T) {
	e := newEnv(t)
	e.yt.AddChannel(chanA, "", "Channel A")
	e.yt.AddVideo(chanA, "agegated000", "Age-gated", time.Now(), 300)
	e.store.SeeVideo(e.ctx, subjects.TrackerVideo{ID: "agegated000", ChannelID: chanA}, time.Now())
	e.yt.SetState("agegated000", youtubetest.StateAgeRestricted)
	e.start("videos")
	e.job(subjects.TrackerKindHourly, "agegated000", time.Now().Truncate(time.Second))
	testenv.EventuallyState(t, 20*time.Second, "age-gated video sampled with its state", func() (bool, any) {
		r, _ := e.store.Video(e.ctx, "agegated000")
		return r.State == "age_restricted" && r.StateReason == "Sign in to confirm your age" && r.Views == 300, r
	})
	if n := e.count("SELECT count() FROM video_samples WHERE video_id = 'agegated000' AND views = 300"); n != 1 {
		t.Fatalf("age-gated video samples = %d, want 1", n)
	}
}
