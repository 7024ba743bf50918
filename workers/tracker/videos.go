package tracker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"jetfleet/analytics"
	"jetfleet/internal/blob"
	"jetfleet/internal/tracking"
	"jetfleet/internal/youtube"
	"jetfleet/subjects"
)

// VideosConfig tunes the video job handler.
type VideosConfig struct {
	// FlushEvery is how often samples and changes go to ClickHouse; a job
	// is acknowledged after its rows are stored. Default 250ms.
	FlushEvery time.Duration
	// OnStored, when set, is called after a job's sample is stored (the
	// benchmark measures with it).
	OnStored func(videoID string, slot time.Time)
}

// Videos handles video jobs.
type Videos struct {
	store    *tracking.Store
	yt       *youtube.Client
	blobs    blob.Store
	samples  *analytics.DurableWriter
	changes  *analytics.DurableWriter
	cfg      VideosConfig
	log      *slog.Logger
	refusals *refusals
}

// Columns written, in order.
var (
	sampleColumns = []string{"video_id", "channel_id", "sampled_at", "views", "likes", "title", "thumb_hash"}
	changeColumns = []string{"video_id", "changed_at", "kind", "before", "after"}
)

// NewVideos returns the video job handler. Run must run while it handles
// jobs: it flushes the rows the handlers wait for.
func NewVideos(store *tracking.Store, yt *youtube.Client, blobs blob.Store, ch driver.Conn, cfg VideosConfig, log *slog.Logger) (*Videos, error) {
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 250 * time.Millisecond
	}
	samples, err := analytics.NewDurableWriter(ch, "video_samples", sampleColumns, cfg.FlushEvery, log)
	if err != nil {
		return nil, err
	}
	changes, err := analytics.NewDurableWriter(ch, "video_changes", changeColumns, cfg.FlushEvery, log)
	if err != nil {
		return nil, err
	}
	return &Videos{store: store, yt: yt, blobs: blobs, samples: samples, changes: changes, cfg: cfg, log: log, refusals: newRefusals(store, log)}, nil
}

// Run flushes rows to ClickHouse until ctx ends, then flushes what is left.
// Stop it only after the handlers have finished.
func (v *Videos) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return v.samples.Run(ctx) })
	g.Go(func() error { return v.changes.Run(ctx) })
	return g.Wait()
}

// ThumbHash is the content hash the tracker compares thumbnails by: the
// first 16 hex digits of the SHA-256 of the smallest thumbnail.
func ThumbHash(jpeg []byte) string {
	sum := sha256.Sum256(jpeg)
	return hex.EncodeToString(sum[:8])
}

// Handle samples one video for the job's slot.
func (v *Videos) Handle(ctx context.Context, msg jetstream.Msg) error {
	// Under the consumer's 2-minute ack wait: a job stuck on YouTube or on
	// ClickHouse gives its slot back and is retried with backoff.
	ctx, cancel := context.WithTimeout(ctx, jobTimeout)
	defer cancel()
	job, err := decodeJob(msg)
	if err != nil {
		return err
	}
	rec, err := v.store.Video(ctx, job.ID)
	if errors.Is(err, tracking.ErrNotFound) {
		v.log.Debug("video no longer tracked; job skipped", "video", job.ID)
		return nil
	}
	if err != nil {
		return err
	}
	page, err := v.yt.Video(ctx, job.ID)
	var state *youtube.StateError
	switch {
	case errors.As(err, &state):
		return v.hidden(ctx, rec, state)
	case err != nil:
		v.refusals.note(ctx, err)
		return classify(err)
	}
	small, err := v.yt.Thumbnail(ctx, job.ID, youtube.ThumbSmall)
	if err != nil {
		return classify(err)
	}
	hash := ThumbHash(small)
	slot := job.Slot.UTC().Truncate(time.Second)
	// A job older than the last sample (a late redelivery) still adds its
	// point, but must not report changes backwards.
	stale := !rec.Sampled.IsZero() && slot.Before(rec.Sampled)

	if hash != rec.ThumbHash && !stale {
		if err := v.storeThumbs(ctx, job.ID, hash, small); err != nil {
			return err
		}
		if rec.ThumbHash != "" {
			if err := v.changes.Write(ctx, job.ID, slot, "thumbnail", rec.ThumbHash, hash); err != nil {
				return err
			}
		}
	}
	if rec.Title != "" && page.Title != rec.Title && !stale {
		if err := v.changes.Write(ctx, job.ID, slot, "title", rec.Title, page.Title); err != nil {
			return err
		}
	}
	if err := v.samples.Write(ctx, job.ID, page.ChannelID, slot, uint64(page.Views), uint64(page.Likes), page.Title, hash); err != nil {
		return err
	}
	if !stale {
		err = v.store.UpdateVideo(ctx, job.ID, func(r *subjects.TrackerVideo) {
			r.Title, r.ThumbHash, r.Views, r.Likes, r.Sampled = page.Title, hash, page.Views, page.Likes, slot
			// An age-gated page still gives the counts; its state is shown.
			r.State, r.StateReason = string(page.State), page.StateReason
			if r.ChannelID == "" {
				r.ChannelID = page.ChannelID
			}
			if !page.PublishedAt.IsZero() {
				r.PublishedAt = page.PublishedAt
			}
		})
		if err != nil {
			return err
		}
	}
	if v.cfg.OnStored != nil {
		v.cfg.OnStored(job.ID, job.Slot)
	}
	return nil
}

// hidden records that YouTube hides the video (private, removed,
// age-gated…): a state of the video, not a failure, so the job is done and
// the pages show the state. The next sample that gets counts clears it.
func (v *Videos) hidden(ctx context.Context, rec subjects.TrackerVideo, state *youtube.StateError) error {
	if rec.State != string(state.State) {
		v.log.Info("YouTube hides the video", "video", rec.ID, "state", state.State, "reason", state.Reason)
	}
	return v.store.UpdateVideo(ctx, rec.ID, func(r *subjects.TrackerVideo) {
		r.State, r.StateReason = string(state.State), state.Reason
	})
}

// storeThumbs keeps the low-resolution (the hashed one) and high-resolution
// copies under their known keys. Put replaces, so a retry is harmless.
func (v *Videos) storeThumbs(ctx context.Context, id, hash string, small []byte) error {
	if err := v.blobs.Put(ctx, tracking.ThumbKey(id, hash, false), bytes.NewReader(small), int64(len(small)), "image/jpeg"); err != nil {
		return fmt.Errorf("store thumbnail %s: %w", id, err)
	}
	high, err := v.yt.HighThumbnail(ctx, id)
	if err != nil {
		return classify(err)
	}
	if err := v.blobs.Put(ctx, tracking.ThumbKey(id, hash, true), bytes.NewReader(high), int64(len(high)), "image/jpeg"); err != nil {
		return fmt.Errorf("store thumbnail %s: %w", id, err)
	}
	return nil
}
