package main

import (
	"context"

	"jetfleet/internal/tracking"
	"jetfleet/workers/consume"
	"jetfleet/workers/tracker"
)

// trackerRoles are the worker roles of the tracker product: schedule ticks
// to jobs, channel RSS checks, video samples.
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
	}
}
