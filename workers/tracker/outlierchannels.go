package tracker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"jetfleet/analytics"
	"jetfleet/analytics/bands"
	"jetfleet/internal/blob"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

var bandColumns = []string{"channel_id", "week", "age_hours", "videos", "p25", "p50", "p75"}

var outlierColumns = []string{"week", "channel_id", "video_id", "kind", "score", "views", "expected", "low", "high", "at"}

// OutlierChannels handles one channel's part of the weekly outlier job:
// it merges the week's samples into the channel's band snapshot (object
// storage), writes the band and the channel's outliers to ClickHouse, then
// stores the snapshot. A replayed job merges the same samples again, which
// changes nothing, and rewrites the same rows (keyed by week).
type OutlierChannels struct {
	ch      driver.Conn
	blobs   blob.Store
	bands   *analytics.DurableWriter
	outlier *analytics.DurableWriter
	log     *slog.Logger
}

// NewOutlierChannels returns the handler; Run must run for its writes to
// reach ClickHouse.
func NewOutlierChannels(ch driver.Conn, blobs blob.Store, log *slog.Logger) (*OutlierChannels, error) {
	b, err := analytics.NewDurableWriter(ch, "channel_bands", bandColumns, 250*time.Millisecond, log)
	if err != nil {
		return nil, err
	}
	o, err := analytics.NewDurableWriter(ch, "outliers", outlierColumns, 250*time.Millisecond, log)
	if err != nil {
		return nil, err
	}
	return &OutlierChannels{ch: ch, blobs: blobs, bands: b, outlier: o, log: log}, nil
}

// Run flushes the writers until ctx ends.
func (o *OutlierChannels) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return o.bands.Run(ctx) })
	g.Go(func() error { return o.outlier.Run(ctx) })
	return g.Wait()
}

// Handle runs one channel's job.
func (o *OutlierChannels) Handle(ctx context.Context, msg jetstream.Msg) error {
	var job subjects.TrackerChannelWeek
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		return consume.Permanent(fmt.Errorf("outlier job: %w", err))
	}
	if job.Channel == "" || job.Week.IsZero() {
		return consume.Permanentf("outlier job without channel or week: %s", msg.Data())
	}
	week := analytics.WeekStart(job.Week)
	end := week.AddDate(0, 0, 7)
	snap, err := o.load(ctx, job.Channel)
	if err != nil {
		return err
	}
	samples := map[string][]bands.Sample{}
	last := map[string]bands.Sample{} // each video's latest sample of the week: what it is judged on
	firsts := map[string]time.Time{}
	var history []string // videos the snapshot has not seen, sampled before the week
	for _, v := range job.Videos {
		if len(v.At) != len(v.Views) {
			return consume.Permanentf("outlier job for %s: video %s has %d times and %d views", job.Channel, v.ID, len(v.At), len(v.Views))
		}
		for i, at := range v.At {
			x := bands.Sample{At: time.Unix(at, 0).UTC(), Views: v.Views[i]}
			samples[v.ID] = append(samples[v.ID], x)
			if l, ok := last[v.ID]; !x.At.Before(week) && (!ok || x.At.After(l.At)) {
				last[v.ID] = x
			}
		}
		if _, known := snap.First(v.ID); known {
			continue
		}
		first := time.Unix(v.First, 0).UTC()
		for _, x := range samples[v.ID] {
			if v.First == 0 || x.At.Before(first) {
				first, v.First = x.At, x.At.Unix()
			}
		}
		firsts[v.ID] = first
		if !job.Full && first.Before(week) {
			history = append(history, v.ID)
		}
	}
	// A video new to the snapshot but older than the week (a channel
	// tracked since, a snapshot lost): its curve so far, by primary key.
	if len(history) > 0 {
		before, err := analytics.SamplesBefore(ctx, o.ch, history, week)
		if err != nil {
			return err
		}
		for vid, h := range before {
			for i, at := range h.At {
				samples[vid] = append(samples[vid], bands.Sample{At: time.Unix(at, 0).UTC(), Views: h.Views[i]})
			}
		}
	}
	snap.Merge(end, firsts, samples)
	band := snap.Band()

	rows := make([][]any, 0, len(band))
	for _, p := range band {
		rows = append(rows, []any{job.Channel, week, bands.AgeHours(p.Age), uint32(p.Videos), p.P25, p.P50, p.P75})
	}
	var found [][]any
	for vid, x := range last {
		first, ok := snap.First(vid)
		if !ok {
			continue
		}
		age, ok := bands.Age(first, x.At)
		if !ok {
			continue
		}
		if p, score, outlier := bands.Judge(band, age, x.Views); outlier {
			found = append(found, []any{week, job.Channel, vid, analytics.OutlierChannel, score, x.Views, p.P50, p.P25, p.P75, x.At})
		}
	}
	if err := o.bands.WriteRows(ctx, rows); err != nil {
		return fmt.Errorf("band of %s: %w", job.Channel, err)
	}
	if err := o.outlier.WriteRows(ctx, found); err != nil {
		return fmt.Errorf("outliers of %s: %w", job.Channel, err)
	}
	// Stored last: a crash before this replays the job onto the previous
	// snapshot, which gives the same band.
	b := snap.Encode()
	if err := o.blobs.Put(ctx, subjects.TrackerBandKey(job.Channel), bytes.NewReader(b), int64(len(b)), ""); err != nil {
		return fmt.Errorf("band snapshot of %s: %w", job.Channel, err)
	}
	return nil
}

// load reads a channel's band snapshot; a channel without one starts empty.
// A snapshot that does not decode is rebuilt from the samples (its
// unknown videos' history is read) rather than blocking the channel.
func (o *OutlierChannels) load(ctx context.Context, cid string) (bands.Snapshot, error) {
	r, _, err := o.blobs.Get(ctx, subjects.TrackerBandKey(cid))
	if errors.Is(err, blob.ErrNotFound) {
		return bands.Snapshot{Channel: cid}, nil
	}
	if err != nil {
		return bands.Snapshot{}, fmt.Errorf("band snapshot of %s: %w", cid, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return bands.Snapshot{}, fmt.Errorf("band snapshot of %s: %w", cid, err)
	}
	s, err := bands.Decode(b)
	if err != nil {
		o.log.Warn("band snapshot unreadable; rebuilding it", "channel", cid, "err", err)
		return bands.Snapshot{Channel: cid}, nil
	}
	return s, nil
}
