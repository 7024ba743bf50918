package tracker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/accounts"
	"jetfleet/internal/mail"
	"jetfleet/internal/sealed"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	workermail "jetfleet/workers/mail"
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

// outbox runs the mail role with the development outbox as its sender and
// returns a function listing what it delivered.
func (e *env) outbox() func() []subjects.Mail {
	e.t.Helper()
	kv, err := e.js.KeyValue(e.ctx, subjects.OutboxBucket)
	if err != nil {
		e.t.Fatal(err)
	}
	box := mail.NewOutbox(kv)
	e.run("mail", consume.Config{Role: "mail", Stream: subjects.MailStream, Consumer: subjects.MailConsumer},
		workermail.New(box, quiet).Handle)
	return func() []subjects.Mail {
		entries, err := box.List(e.ctx, 0)
		if err != nil {
			e.t.Fatal(err)
		}
		var out []subjects.Mail
		for _, x := range entries {
			out = append(out, x.Mail)
		}
		return out
	}
}

// outlierChannels runs the per-channel outlier jobs, as the
// tracker-outlier-channels role does, until the test ends.
func (e *env) outlierChannels() *tracker.OutlierChannels {
	e.t.Helper()
	h, err := tracker.NewOutlierChannels(e.conn, e.blobs, quiet)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	e.run("tracker-outlier-channels", consume.Config{
		Role: "tracker-outlier-channels", Stream: subjects.TrackerStream, Consumer: subjects.TrackerOutlierChannelConsumer, Batch: 8, Concurrency: 8,
	}, h.Handle)
	e.t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// run runs a consume.Handler until the test ends.
func (e *env) run(role string, cfg consume.Config, h consume.Handler) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() {
		done <- consume.New(e.js, cfg, h, consume.NewMetrics(prometheus.NewRegistry()), quiet).Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("role %s: %v", role, err)
		}
	})
}

// eventually polls cond until it holds or 30 s pass, then fails with what
// it last saw.
func (e *env) eventually(what string, cond func() (bool, any)) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last any
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("%s: not within 30 s; last seen %+v", what, last)
}

// outlierTickDone waits until the tracker-outliers consumer has acknowledged
// n ticks.
func (e *env) outlierTickDone(n uint64) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("tracker-outliers acknowledges %d ticks", n), func() (bool, any) {
		c, err := e.js.Consumer(e.ctx, subjects.SchedulesStream, subjects.TrackerOutliersConsumer)
		if err != nil {
			return false, err
		}
		info, err := c.Info(e.ctx)
		if err != nil {
			return false, err
		}
		return info.AckFloor.Consumer >= n && info.NumAckPending == 0, info
	})
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
			if err := e.store.TrackChannel(e.ctx, u.ID, true, subjects.TrackerChannel{ID: c, Title: c}); err != nil {
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

	box, err := sealed.New([]byte(strings.Repeat("t", 32)))
	if err != nil {
		t.Fatal(err)
	}
	e.outlierChannels()
	h := tracker.NewOutliers(tracker.OutliersDeps{
		JS: e.js, Blobs: e.blobs, ClickHouse: e.conn, Store: e.store, Users: users, Mail: mail.Enqueuer(e.js),
		BaseURL: "https://jetfleet.example", Tokens: box, Log: quiet,
	})
	e.run("tracker-outliers", consume.Config{
		Role: "tracker-outliers", Stream: subjects.SchedulesStream, Consumer: subjects.TrackerOutliersConsumer, Batch: 1, Concurrency: 1,
	}, h.Handle)
	delivered := e.outbox()

	e.tick(subjects.TrackerOutliersWeeklyTick)
	e.outlierTickDone(1)
	var got []subjects.Mail
	e.eventually("the digest delivered", func() (bool, any) { got = delivered(); return len(got) > 0, got })
	mailDone := func() (bool, any) {
		info, err := e.js.Stream(e.ctx, subjects.MailStream)
		if err != nil {
			return false, err
		}
		st := info.CachedInfo().State
		return st.Msgs == 0, st
	}
	e.eventually("MAIL drained", mailDone)
	if got = delivered(); len(got) != 1 {
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
	// One-click unsubscribe (RFC 8058) for mail programs, and a visible
	// link in both parts, each opening only as fan's.
	prefix := "https://jetfleet.example/api/tracker/unsubscribe/"
	if !strings.HasPrefix(m.Unsubscribe, prefix) {
		t.Fatalf("digest unsubscribe URL = %q", m.Unsubscribe)
	}
	token := strings.TrimPrefix(m.Unsubscribe, prefix)
	if uid, err := tracking.UnsubscribeUser(box, token); err != nil || uid != fan.ID {
		t.Errorf("unsubscribe token opens as %q (%v), want %s", uid, err, fan.ID)
	}
	visible := "https://jetfleet.example/tracker/unsubscribe/" + token
	if !strings.Contains(m.Text, visible) || !strings.Contains(m.HTML, visible) {
		t.Errorf("the text or HTML part lacks the visible unsubscribe link %s:\n%s\n%s", visible, m.Text, m.HTML)
	}
	if !strings.Contains(m.HTML, `href="https://jetfleet.example/tracker/videos/hitvid"`) {
		t.Errorf("HTML part lacks the link to the curve:\n%s", m.HTML)
	}

	// The tick fanned out one job per channel, each leaving its band
	// snapshot in object storage.
	for _, cid := range []string{"bigchan", "quietchan"} {
		if _, snap := e.snapshot(cid); len(snap.Curves) == 0 {
			t.Errorf("band snapshot of %s is empty", cid)
		}
	}

	// The sent mark outlives MAIL's duplicate window.
	if sent, err := e.store.DigestSent(e.ctx, fan.ID, week.Format("20060102")); err != nil || !sent {
		t.Errorf("digest of %s not marked sent: %v %v", week.Format("20060102"), sent, err)
	}

	// A tick fired again for the same week sends nothing more.
	e.tick(subjects.TrackerOutliersWeeklyTick)
	e.outlierTickDone(2)
	e.eventually("MAIL drained", mailDone)
	if got := delivered(); len(got) != 1 {
		t.Fatalf("mails after the tick fired twice: %d, want 1: %+v", len(got), got)
	}
}
