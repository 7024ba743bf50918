package main

import (
	"context"
	"time"

	"jetfleet/internal/accounts"
	mailer "jetfleet/internal/mail"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/tracker"
)

// trackerRoles are the worker roles of the tracker product: schedule ticks
// to jobs, channel RSS checks, video samples, the weekly outliers and digest.
func trackerRoles() []role {
	return []role{
		{
			name: "tracker-ticks",
			run: func(ctx context.Context, d roleDeps, m *consume.Metrics) error {
				store, err := tracking.Open(ctx, d.js, tracking.Options{})
				if err != nil {
					return err
				}
				return tracker.RunTicks(ctx, d.js, store, trackerConfig(d.cfg), m, d.log)
			},
		},
		{
			name: "tracker-channels",
			run: func(ctx context.Context, d roleDeps, m *consume.Metrics) error {
				store, err := tracking.Open(ctx, d.js, tracking.Options{})
				if err != nil {
					return err
				}
				yt, err := newYouTube(d.cfg, d.reg)
				if err != nil {
					return err
				}
				return tracker.RunChannels(ctx, d.js, store, yt, trackerConfig(d.cfg), m, d.log)
			},
		},
		{
			name: "tracker-videos",
			run: func(ctx context.Context, d roleDeps, m *consume.Metrics) error {
				ch, err := d.clickhouse("tracker-videos")
				if err != nil {
					return err
				}
				store, err := tracking.Open(ctx, d.js, tracking.Options{})
				if err != nil {
					return err
				}
				yt, err := newYouTube(d.cfg, d.reg)
				if err != nil {
					return err
				}
				return tracker.RunVideos(ctx, d.js, store, yt, d.blobs, ch, trackerConfig(d.cfg), m, d.log)
			},
		},
		{
			name: "tracker-outliers",
			consumer: consume.Config{
				Role: "tracker-outliers", Stream: subjects.SchedulesStream, Consumer: subjects.TrackerOutliersConsumer,
				Batch: 1, Concurrency: 1, BackoffMin: time.Minute, BackoffMax: 30 * time.Minute,
			},
			build: func(ctx context.Context, d roleDeps) (consume.Handler, error) {
				ch, err := d.clickhouse("tracker-outliers")
				if err != nil {
					return nil, err
				}
				store, err := tracking.Open(ctx, d.js, tracking.Options{})
				if err != nil {
					return nil, err
				}
				users, err := accounts.Open(ctx, d.js, accounts.Config{})
				if err != nil {
					return nil, err
				}
				return tracker.NewOutliers(tracker.OutliersDeps{
					ClickHouse: ch, Store: store, Users: users, Mail: mailer.Enqueuer(d.js),
					BaseURL: d.cfg.BaseURL, Log: d.log.With("role", "tracker-outliers"),
				}).Handle, nil
			},
		},
	}
}
