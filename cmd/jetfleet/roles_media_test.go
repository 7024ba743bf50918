package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/workers/consume"
)

// A worker without ffmpeg (the distroless image runs `worker --roles all`)
// keeps running: its media roles take no jobs, which wait in MEDIA, and
// stop cleanly with the process.
func TestMediaRolesWithoutFFmpegWaitInsteadOfFailingTheWorker(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	d := roleDeps{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	metrics := consume.NewMetrics(prometheus.NewRegistry())
	for _, r := range mediaRoles()[:2] { // probe needs ffprobe, transcode ffmpeg
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.run(ctx, d, metrics) }()
		select {
		case err := <-done:
			t.Fatalf("%s ended without ffmpeg instead of waiting: %v", r.name, err)
		default:
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s stopped with %v, want nil", r.name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not stop with its context", r.name)
		}
	}
}
