package tracker

import (
	"context"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	"jetfleet/internal/tracking"
	"jetfleet/internal/youtube"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Config tunes the tracker roles.
type Config struct {
	Slots Slots
	// VideoConcurrency is how many video jobs one worker runs at once: the
	// seed's batching pattern, so waiting on YouTube overlaps. Default 256.
	VideoConcurrency int
	// ChannelConcurrency likewise for RSS checks; default 64.
	ChannelConcurrency int
	Videos             VideosConfig
	// Now is the clock of channel checks; default time.Now.
	Now func() time.Time
}

// RunTicks runs the tracker-ticks role until ctx ends.
func RunTicks(ctx context.Context, js jetstream.JetStream, store *tracking.Store, cfg Config, m *consume.Metrics, log *slog.Logger) error {
	t := NewTicks(js, store, cfg.Slots, 0, log.With("role", "tracker-ticks"))
	return consume.New(js, consume.Config{
		Role: "tracker-ticks", Stream: subjects.SchedulesStream, Consumer: subjects.TrackerTickConsumer,
		Batch: 4, Concurrency: 4,
	}, t.Handle, m, log).Run(ctx)
}

// RunChannels runs the tracker-channels role until ctx ends.
func RunChannels(ctx context.Context, js jetstream.JetStream, store *tracking.Store, yt *youtube.Client, cfg Config, m *consume.Metrics, log *slog.Logger) error {
	if cfg.ChannelConcurrency <= 0 {
		cfg.ChannelConcurrency = 64
	}
	c := NewChannels(store, yt, cfg.Now, log.With("role", "tracker-channels"))
	return consume.New(js, consume.Config{
		Role: "tracker-channels", Stream: subjects.TrackStream, Consumer: subjects.TrackChannelConsumer,
		Batch: cfg.ChannelConcurrency, Concurrency: cfg.ChannelConcurrency,
	}, c.Handle, m, log).Run(ctx)
}

// RunVideos runs the tracker-videos role until ctx ends. Its ClickHouse
// writers outlive the consumer so the jobs in flight at shutdown finish.
func RunVideos(ctx context.Context, js jetstream.JetStream, store *tracking.Store, yt *youtube.Client, blobs blob.Store, ch driver.Conn, cfg Config, m *consume.Metrics, log *slog.Logger) error {
	if cfg.VideoConcurrency <= 0 {
		cfg.VideoConcurrency = 256
	}
	v, err := NewVideos(store, yt, blobs, ch, cfg.Videos, log.With("role", "tracker-videos"))
	if err != nil {
		return err
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- v.Run(wctx) }()
	err = consume.New(js, consume.Config{
		Role: "tracker-videos", Stream: subjects.TrackStream, Consumer: subjects.TrackVideoConsumer,
		Batch: cfg.VideoConcurrency, Concurrency: cfg.VideoConcurrency,
	}, v.Handle, m, log).Run(ctx)
	stop()
	if werr := <-done; err == nil {
		err = werr
	}
	return err
}
