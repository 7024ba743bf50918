package main

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	domain "jetfleet/internal/media"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/media"
)

// mediaRoles are the Media pipeline's roles: probe fans an upload out into
// one job per rendition, transcode runs ffmpeg (scale it by running more
// processes with this role), publish writes the master playlist.
func mediaRoles() []role {
	build := func(pick func(*media.Roles) consume.Handler) func(ctx context.Context, d roleDeps) (consume.Handler, error) {
		return func(ctx context.Context, d roleDeps) (consume.Handler, error) {
			for _, prog := range []string{"ffmpeg", "ffprobe"} {
				if _, err := exec.LookPath(prog); err != nil {
					return nil, fmt.Errorf("%s not found on PATH (install ffmpeg, e.g. `make deps-run`): %w", prog, err)
				}
			}
			items, err := domain.Open(ctx, d.js, d.blobs)
			if err != nil {
				return nil, err
			}
			return pick(media.New(media.Deps{JS: d.js, Items: items, Blobs: d.blobs, Log: d.log.With("product", "media")})), nil
		}
	}
	return []role{{
		name: "media-probe",
		consumer: consume.Config{
			Role: "media-probe", Stream: subjects.MediaStream, Consumer: subjects.MediaProbeConsumer,
			Batch: 4, Concurrency: 2, BackoffMin: time.Second, BackoffMax: time.Minute,
		},
		build: build(func(r *media.Roles) consume.Handler { return r.Probe }),
	}, {
		// One ffmpeg at a time per process: it uses every core it gets.
		name: "media-transcode",
		consumer: consume.Config{
			Role: "media-transcode", Stream: subjects.MediaStream, Consumer: subjects.MediaTranscodeConsumer,
			Batch: 1, Concurrency: 1, BackoffMin: 5 * time.Second, BackoffMax: 5 * time.Minute,
			ShutdownGrace: time.Minute,
		},
		build: build(func(r *media.Roles) consume.Handler { return r.Transcode }),
	}, {
		name: "media-publish",
		consumer: consume.Config{
			Role: "media-publish", Stream: subjects.MediaStream, Consumer: subjects.MediaPublishConsumer,
			Batch: 8, Concurrency: 2, BackoffMin: time.Second, BackoffMax: time.Minute,
		},
		build: build(func(r *media.Roles) consume.Handler { return r.Publish }),
	}}
}
