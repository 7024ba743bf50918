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
	mk := func(cfg consume.Config, needs []string, pick func(*media.Roles) consume.Handler) role {
		return role{
			name: cfg.Role,
			// run instead of build: a process without ffmpeg (the
			// distroless image) must still run its other roles; the
			// media jobs then wait in MEDIA for a worker that has it.
			run: func(ctx context.Context, d roleDeps, m *consume.Metrics) error {
				log := d.log.With("role", cfg.Role)
				for _, prog := range needs {
					if _, err := exec.LookPath(prog); err != nil {
						log.Error("not taking media jobs: "+prog+" is not on PATH (install ffmpeg, e.g. `make deps-run`); they wait in "+subjects.MediaStream+" for a worker that has it", "err", err)
						<-ctx.Done()
						return nil
					}
				}
				items, err := domain.Open(ctx, d.js, d.blobs)
				if err == nil {
					roles := media.New(media.Deps{JS: d.js, Items: items, Blobs: d.blobs, Log: log})
					err = consume.New(d.js, cfg, pick(roles), m, d.log).Run(ctx)
				}
				if err != nil && ctx.Err() != nil {
					return nil // stopped while starting: a shutdown, not a failure
				}
				if err != nil {
					return fmt.Errorf("role %s: %w", cfg.Role, err)
				}
				return nil
			},
		}
	}
	return []role{
		mk(consume.Config{
			Role: "media-probe", Stream: subjects.MediaStream, Consumer: subjects.MediaProbeConsumer,
			Batch: 4, Concurrency: 2, BackoffMin: time.Second, BackoffMax: time.Minute,
		}, []string{"ffprobe"}, func(r *media.Roles) consume.Handler { return r.Probe }),
		// One ffmpeg at a time per process: it uses every core it gets.
		mk(consume.Config{
			Role: "media-transcode", Stream: subjects.MediaStream, Consumer: subjects.MediaTranscodeConsumer,
			Batch: 1, Concurrency: 1, BackoffMin: 5 * time.Second, BackoffMax: 5 * time.Minute,
			ShutdownGrace: time.Minute,
		}, []string{"ffmpeg"}, func(r *media.Roles) consume.Handler { return r.Transcode }),
		mk(consume.Config{
			Role: "media-publish", Stream: subjects.MediaStream, Consumer: subjects.MediaPublishConsumer,
			Batch: 8, Concurrency: 2, BackoffMin: time.Second, BackoffMax: time.Minute,
		}, nil, func(r *media.Roles) consume.Handler { return r.Publish }),
	}
}
