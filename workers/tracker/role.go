package tracker

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/accounts"
	mailer "jetfleet/internal/mail"
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
	// OutlierConcurrency is how many channels' weekly outlier jobs one
	// worker runs at once. A job mostly waits for its rows' group commit
	// (every 250 ms), so many in flight keep ClickHouse busy; default 128.
	OutlierConcurrency int
	Videos             VideosConfig
	// Now is the clock of channel checks; default time.Now.
	Now func() time.Time
	// BaseURL is the site's public URL, for links in the weekly digest.
	BaseURL string
	// YouTube builds the client of the channel and video roles, its
	// metrics registered with reg (nil: not exported). cmd builds it from
	// the same settings as the edge's.
	YouTube func(reg prometheus.Registerer) (*youtube.Client, error)
}

// Roles are the tracker's roles: schedule ticks to jobs, premium
// high-resolution ticks to jobs, channel RSS checks, video samples, the
// weekly outliers and digest, and the weekly per-channel outlier jobs.
func Roles(cfg Config) []consume.Role {
	if cfg.ChannelConcurrency <= 0 {
		cfg.ChannelConcurrency = 64
	}
	if cfg.VideoConcurrency <= 0 {
		cfg.VideoConcurrency = 256
	}
	if cfg.OutlierConcurrency <= 0 {
		cfg.OutlierConcurrency = 128
	}
	return []consume.Role{{
		Name: "tracker-ticks",
		Consumer: consume.Config{
			Role: "tracker-ticks", Stream: subjects.SchedulesStream, Consumer: subjects.TrackerTickConsumer,
			Batch: 4, Concurrency: 4,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			store, err := tracking.Open(ctx, d.JS, tracking.Options{})
			if err != nil {
				return nil, err
			}
			return NewTicks(d.JS, store, cfg.Slots, 0, d.Log.With("role", "tracker-ticks")).Handle, nil
		},
	}, {
		Name: "tracker-hires",
		Consumer: consume.Config{
			Role: "tracker-hires", Stream: subjects.SchedulesStream, Consumer: subjects.TrackerHiResConsumer,
			Batch: 1, Concurrency: 1,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			store, err := tracking.Open(ctx, d.JS, tracking.Options{})
			if err != nil {
				return nil, err
			}
			users, err := accounts.Open(ctx, d.JS, accounts.Config{})
			if err != nil {
				return nil, err
			}
			log := d.Log.With("role", "tracker-hires")
			return NewHiRes(NewTicks(d.JS, store, cfg.Slots, 0, log), store, users, log).Handle, nil
		},
	}, {
		Name: "tracker-channels",
		Consumer: consume.Config{
			Role: "tracker-channels", Stream: subjects.TrackerStream, Consumer: subjects.TrackerChannelConsumer,
			Batch: cfg.ChannelConcurrency, Concurrency: cfg.ChannelConcurrency,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			store, err := tracking.Open(ctx, d.JS, tracking.Options{})
			if err != nil {
				return nil, err
			}
			yt, err := cfg.YouTube(d.Registerer)
			if err != nil {
				return nil, err
			}
			return NewChannels(store, yt, cfg.Now, d.Log.With("role", "tracker-channels")).Handle, nil
		},
	}, {
		Name: "tracker-videos",
		Run: func(ctx context.Context, d consume.Deps, m *consume.Metrics) error {
			return runVideos(ctx, d, m, cfg)
		},
	}, {
		Name: "tracker-outliers",
		Consumer: consume.Config{
			Role: "tracker-outliers", Stream: subjects.SchedulesStream, Consumer: subjects.TrackerOutliersConsumer,
			Batch: 1, Concurrency: 1, BackoffMin: time.Minute, BackoffMax: 30 * time.Minute,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			ch, err := d.RequireClickHouse("tracker-outliers")
			if err != nil {
				return nil, err
			}
			store, err := tracking.Open(ctx, d.JS, tracking.Options{})
			if err != nil {
				return nil, err
			}
			users, err := accounts.Open(ctx, d.JS, accounts.Config{})
			if err != nil {
				return nil, err
			}
			if d.Tokens == nil {
				return nil, errors.New("tracker-outliers: TOKEN_KEY is required (it seals the digest's unsubscribe links)")
			}
			if d.Blobs == nil {
				return nil, errors.New("tracker-outliers: blob storage is required (it keeps the band snapshots)")
			}
			return NewOutliers(OutliersDeps{
				JS: d.JS, Blobs: d.Blobs, ClickHouse: ch, Store: store, Users: users, Mail: mailer.Enqueuer(d.JS),
				BaseURL: cfg.BaseURL, Tokens: d.Tokens, Log: d.Log.With("role", "tracker-outliers"),
			}).Handle, nil
		},
	}, {
		Name: "tracker-outlier-channels",
		Run: func(ctx context.Context, d consume.Deps, m *consume.Metrics) error {
			return runOutlierChannels(ctx, d, m, cfg)
		},
	}}
}

// runOutlierChannels runs the per-channel outlier jobs until ctx ends; like
// runVideos, its ClickHouse writers outlive the consumer.
func runOutlierChannels(ctx context.Context, d consume.Deps, m *consume.Metrics, cfg Config) error {
	ch, err := d.RequireClickHouse("tracker-outlier-channels")
	if err != nil {
		return err
	}
	if d.Blobs == nil {
		return errors.New("tracker-outlier-channels: blob storage is required (it keeps the band snapshots)")
	}
	log := d.Log.With("role", "tracker-outlier-channels")
	h, err := NewOutlierChannels(ch, d.Blobs, log)
	if err != nil {
		return err
	}
	return consume.WithLoop(ctx, h.Run, consume.New(d.JS, consume.Config{
		Role: "tracker-outlier-channels", Stream: subjects.TrackerStream, Consumer: subjects.TrackerOutlierChannelConsumer,
		Batch: cfg.OutlierConcurrency, Concurrency: cfg.OutlierConcurrency,
	}, h.Handle, m, d.Log).Run)
}

// runVideos runs the tracker-videos role until ctx ends. It runs its own
// loop because its ClickHouse writers outlive the consumer, so the jobs in
// flight at shutdown finish.
func runVideos(ctx context.Context, d consume.Deps, m *consume.Metrics, cfg Config) error {
	ch, err := d.RequireClickHouse("tracker-videos")
	if err != nil {
		return err
	}
	store, err := tracking.Open(ctx, d.JS, tracking.Options{})
	if err != nil {
		return err
	}
	yt, err := cfg.YouTube(d.Registerer)
	if err != nil {
		return err
	}
	v, err := NewVideos(store, yt, d.Blobs, ch, cfg.Videos, d.Log.With("role", "tracker-videos"))
	if err != nil {
		return err
	}
	return consume.WithLoop(ctx, v.Run, consume.New(d.JS, consume.Config{
		Role: "tracker-videos", Stream: subjects.TrackerStream, Consumer: subjects.TrackerVideoConsumer,
		Batch: cfg.VideoConcurrency, Concurrency: cfg.VideoConcurrency,
	}, v.Handle, m, d.Log).Run)
}
