package tracker_test

import (
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"jetfleet/analytics"
	"jetfleet/analytics/bands"
	"jetfleet/subjects"
)

// curve is a video's hourly samples growing by perHour, from first for
// hours hours.
func curve(vid string, first time.Time, hours int, perHour uint64) subjects.TrackerWeekCurve {
	c := subjects.TrackerWeekCurve{ID: vid}
	for h := range hours {
		c.At = append(c.At, first.Add(time.Duration(h)*time.Hour).Unix())
		c.Views = append(c.Views, perHour*uint64(h))
	}
	return c
}

// outlierJob enqueues a channel's outlier job under msgID and waits until
// the consumer has acknowledged n jobs.
func (e *env) outlierJob(job subjects.TrackerChannelWeek, msgID string, n uint64) {
	e.t.Helper()
	b, _ := json.Marshal(job)
	m := &nats.Msg{Subject: subjects.TrackerOutlierJob(job.Channel), Data: b, Header: nats.Header{}}
	m.Header.Set(nats.MsgIdHdr, msgID)
	if _, err := e.js.PublishMsg(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
	e.eventually(fmt.Sprintf("%d outlier jobs acknowledged", n), func() (bool, any) {
		c, err := e.js.Consumer(e.ctx, subjects.TrackerStream, subjects.TrackerOutlierChannelConsumer)
		if err != nil {
			return false, err
		}
		info, err := c.Info(e.ctx)
		if err != nil {
			return false, err
		}
		return info.AckFloor.Consumer >= n && info.NumAckPending == 0 && info.NumPending == 0, info
	})
}

func (e *env) snapshot(cid string) ([]byte, bands.Snapshot) {
	e.t.Helper()
	r, _, err := e.blobs.Get(e.ctx, subjects.TrackerBandKey(cid))
	if err != nil {
		e.t.Fatalf("band snapshot of %s: %v", cid, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := bands.Decode(b)
	if err != nil {
		e.t.Fatal(err)
	}
	return b, s
}

func TestOutlierJobsUpdateEachChannelsBandSnapshotWithOnlyTheWeeksSamples(t *testing.T) {
	e := newEnv(t)
	e.outlierChannels()
	week1 := analytics.WeekStart(time.Now()).AddDate(0, 0, -14)
	week2 := week1.AddDate(0, 0, 7)

	// Week 1: six ordinary videos, carried by the job only (ClickHouse
	// never holds them, so week 2 can only know them from the snapshot).
	job1 := subjects.TrackerChannelWeek{Channel: "chan", Week: week1}
	for i := range 6 {
		job1.Videos = append(job1.Videos, curve(fmt.Sprintf("old%d", i), week1.Add(time.Duration(i)*time.Hour), 48, uint64(100+10*(i%3))))
	}
	e.outlierJob(job1, "w1", 1)
	raw1, snap1 := e.snapshot("chan")
	if len(snap1.Curves) != 6 || !snap1.Through.Equal(week2) {
		t.Fatalf("snapshot after week 1: %d curves through %v, want 6 through %v", len(snap1.Curves), snap1.Through, week2)
	}
	t.Logf("band snapshot of 6 videos × 48 hours: %d bytes", len(raw1))

	// Week 2: a new video at ten times the pace, in ClickHouse as the
	// tracker would have stored it, and in the job.
	hit := curve("hit", week2.Add(2*time.Hour), 48, 1000)
	batch, err := e.conn.PrepareBatch(e.ctx, "INSERT INTO video_samples (video_id, channel_id, sampled_at, views, likes, title, thumb_hash)")
	if err != nil {
		t.Fatal(err)
	}
	for i, at := range hit.At {
		if err := batch.Append("hit", "chan", time.Unix(at, 0), hit.Views[i], uint64(0), "t", "h"); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	job2 := subjects.TrackerChannelWeek{Channel: "chan", Week: week2, Videos: []subjects.TrackerWeekCurve{hit}}
	e.outlierJob(job2, "w2", 2)
	raw2, snap2 := e.snapshot("chan")
	if len(snap2.Curves) != 7 || snap2.Curves[0].Video != "hit" {
		t.Fatalf("snapshot after week 2: %d curves, newest %s; want 7, newest hit", len(snap2.Curves), snap2.Curves[0].Video)
	}
	band, err := analytics.ChannelBand(e.ctx, e.conn, "chan", week2)
	if err != nil {
		t.Fatal(err)
	}
	if len(band) < 40 || band[10].AgeHours != 10 || band[10].Videos != 7 {
		t.Fatalf("week 2 band in ClickHouse: %d ages, at 10h %+v; want the 6 old videos from the snapshot and hit", len(band), band[min(10, len(band)-1)])
	}
	all, err := analytics.WeekOutliers(e.ctx, e.conn, week2)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].VideoID != "hit" || all[0].Kind != analytics.OutlierChannel || all[0].Score < 5 {
		t.Fatalf("week 2 outliers: %+v, want hit alone, about 9× the median", all)
	}

	// The job delivered again (a redelivery after a crash): same snapshot,
	// same rows.
	e.outlierJob(job2, "w2-again", 3)
	if raw, _ := e.snapshot("chan"); string(raw) != string(raw2) {
		t.Error("a replayed job changed the band snapshot")
	}
	var n uint64
	if err := e.conn.QueryRow(e.ctx, "SELECT count() FROM outliers FINAL WHERE week = toDateTime(?)", week2.Unix()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("outliers of week 2 after a replay: %d rows, want 1", n)
	}
}

func TestAnOutlierJobThatIsNotJSONIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.outlierChannels()
	if _, err := e.js.Publish(e.ctx, subjects.TrackerOutlierJob("chan"), []byte("{")); err != nil {
		t.Fatal(err)
	}
	e.eventually("the job in the DLQ", func() (bool, any) {
		s, err := e.js.Stream(e.ctx, subjects.DLQStream)
		if err != nil {
			return false, err
		}
		info, err := s.Info(e.ctx)
		if err != nil {
			return false, err
		}
		return info.State.Msgs == 1, info.State
	})
}
