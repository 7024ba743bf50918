package tracker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/accounts"
	"jetfleet/internal/mail"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/tracker"
)

// outlierWeek writes a week of hourly samples to ClickHouse in which
// channel "bigchan" has six ordinary videos and one, "hitvid", ten times
// their views, and channel "quietchan" has six ordinary videos.
func (e *env) outlierWeek(week time.Time) {
	e.t.Helper()
	b, err := e.conn.PrepareBatch(e.ctx, "INSERT INTO video_samples (video_id, channel_id, sampled_at, views, likes, title, thumb_hash)")
	if err != nil {
		e.t.Fatal(err)
	}
	add := func(vid, cid string, first time.Time, perHour uint64) {
		for h := range 48 {
			if err := b.Append(vid, cid, first.Add(time.Duration(h)*time.Hour), perHour*uint64(h), uint64(0), "t", "h"); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	for i := range 6 {
		add(fmt.Sprintf("big%d", i), "bigchan", week.Add(time.Duration(i)*time.Hour), uint64(100+10*(i%3)))
		add(fmt.Sprintf("quiet%d", i), "quietchan", week.Add(time.Duration(i)*time.Hour), uint64(100+10*(i%3)))
	}
	add("hitvid", "bigchan", week.Add(10*time.Hour), 1000)
	if err := b.Send(); err != nil {
		e.t.Fatal(err)
	}
}

// mails returns the mails enqueued on MAIL (no mail role runs here).
func (e *env) mails() []subjects.Mail {
	e.t.Helper()
	info, err := e.js.Stream(e.ctx, subjects.MailStream)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []subjects.Mail
	for seq := uint64(1); seq <= info.CachedInfo().State.LastSeq; seq++ {
		raw, err := info.GetMsg(e.ctx, seq)
		if err != nil {
			continue
		}
		var m subjects.Mail
		if err := json.Unmarshal(raw.Data, &m); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// outlierTickDone waits until the tracker-outliers consumer has acknowledged
// n ticks.
func (e *env) outlierTickDone(n uint64) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last *jetstream.ConsumerInfo
	for time.Now().Before(deadline) {
		c, err := e.js.Consumer(e.ctx, subjects.SchedulesStream, subjects.TrackerOutliersConsumer)
		if err != nil {
			e.t.Fatal(err)
		}
		if last, err = c.Info(e.ctx); err == nil && last.AckFloor.Consumer >= n && last.NumAckPending == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("tracker-outliers did not acknowledge %d ticks; last consumer state %+v", n, last)
}

func TestOutlierTickMailsEachUserTheirOutliersOnceAndNobodyWithNothingToRead(t *testing.T) {
	e := newEnv(t)
	users, err := accounts.Open(e.ctx, e.js, accounts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	person := func(email string, channels ...string) accounts.User {
		u, err := users.EnsureUser(e.ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range channels {
			if err := e.store.TrackChannel(e.ctx, u.ID, true, subjects.TrackedChannel{ID: c, Title: c}); err != nil {
				t.Fatal(err)
			}
		}
		return u
	}
	fan := person("fan@example.com", "bigchan", "quietchan")
	person("quiet@example.com", "quietchan")
	off := person("off@example.com", "bigchan")
	if err := e.store.SetDigest(e.ctx, off.ID, false); err != nil {
		t.Fatal(err)
	}

	week := tracker.DigestWeek(time.Now())
	e.outlierWeek(week)

	h := tracker.NewOutliers(tracker.OutliersDeps{
		ClickHouse: e.conn, Store: e.store, Users: users, Mail: mail.Enqueuer(e.js),
		BaseURL: "https://jetfleet.example", Log: quiet,
	})
	r := consume.New(e.js, consume.Config{
		Role: "tracker-outliers", Stream: subjects.SchedulesStream, Consumer: subjects.TrackerOutliersConsumer, Batch: 1, Concurrency: 1,
	}, h.Handle, consume.NewMetrics(prometheus.NewRegistry()), quiet)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	e.tick(subjects.OutlierWeeklyTick)
	e.outlierTickDone(1)
	got := e.mails()
	if len(got) != 1 {
		t.Fatalf("mails after the tick: %+v, want one, to fan@example.com", got)
	}
	m := got[0]
	if m.To != "fan@example.com" || m.ID != tracker.DigestMailID(fan.ID, week) {
		t.Errorf("mail to %s id %s, want fan@example.com id %s", m.To, m.ID, tracker.DigestMailID(fan.ID, week))
	}
	for _, want := range []string{"hitvid", "https://jetfleet.example/tracker/videos/hitvid", "https://jetfleet.example/tracker/digest", "× the channel's median"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("digest text lacks %q:\n%s", want, m.Text)
		}
	}
	if strings.Contains(m.Text, "quiet") {
		t.Errorf("digest names an ordinary video:\n%s", m.Text)
	}

	// A tick fired again for the same week sends nothing more.
	e.tick(subjects.OutlierWeeklyTick)
	e.outlierTickDone(2)
	if got := e.mails(); len(got) != 1 {
		t.Fatalf("mails after the tick fired twice: %d, want 1: %+v", len(got), got)
	}
}
