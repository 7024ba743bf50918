package media

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	domain "jetfleet/internal/media"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Roles are the Media pipeline's roles: media-probe fans an upload out into
// one job per rendition, media-transcode runs ffmpeg (scale it by running
// more processes with this role), media-publish writes the master playlist.
func Roles() []consume.Role {
	mk := func(cfg consume.Config, needs []string, pick func(*Handlers) consume.Handler) consume.Role {
		return consume.Role{
			Name: cfg.Role,
			// Run instead of Build: a process without ffmpeg (the
			// distroless image) must still run its other roles; the media
			// jobs then wait in MEDIA for a worker that has it.
			Run: func(ctx context.Context, d consume.Deps, m *consume.Metrics) error {
				log := d.Log.With("role", cfg.Role)
				for _, prog := range needs {
					if _, err := exec.LookPath(prog); err != nil {
						log.Error("not taking media jobs: "+prog+" is not on PATH (install ffmpeg, e.g. `make deps-run`); they wait in "+subjects.MediaStream+" for a worker that has it", "err", err)
						<-ctx.Done()
						return nil
					}
				}
				items, err := domain.Open(ctx, d.JS, d.Blobs)
				if err == nil {
					h := New(Deps{JS: d.JS, Items: items, Blobs: d.Blobs, Log: log})
					err = consume.New(d.JS, cfg, pick(h), m, d.Log).Run(ctx)
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
	return []consume.Role{
		mk(consume.Config{
			Role: "media-probe", Stream: subjects.MediaStream, Consumer: subjects.MediaProbeConsumer,
			Batch: 4, Concurrency: 2, BackoffMin: time.Second, BackoffMax: time.Minute,
		}, []string{"ffprobe"}, func(h *Handlers) consume.Handler { return h.Probe }),
		// One ffmpeg at a time per process: it uses every core it gets.
		mk(consume.Config{
			Role: "media-transcode", Stream: subjects.MediaStream, Consumer: subjects.MediaTranscodeConsumer,
			Batch: 1, Concurrency: 1, BackoffMin: 5 * time.Second, BackoffMax: 5 * time.Minute,
			ShutdownGrace: time.Minute,
		}, []string{"ffmpeg"}, func(h *Handlers) consume.Handler { return h.Transcode }),
		mk(consume.Config{
			Role: "media-publish", Stream: subjects.MediaStream, Consumer: subjects.MediaPublishConsumer,
			Batch: 8, Concurrency: 2, BackoffMin: time.Second, BackoffMax: time.Minute,
		}, nil, func(h *Handlers) consume.Handler { return h.Publish }),
	}
}
