package media_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/workers/consume"
	workermedia "jetfleet/workers/media"
)

// A worker without ffmpeg (the distroless image runs `worker --roles all`)
// keeps running: its media roles take no jobs, which wait in MEDIA, and
// stop cleanly with the process.
func TestMediaRolesWithoutFFmpegWaitInsteadOfFailingTheWorker(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	d := consume.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	metrics := consume.NewMetrics(prometheus.NewRegistry())
	for _, r := range workermedia.Roles()[:2] { // probe needs ffprobe, transcode ffmpeg
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, d, metrics) }()
		select {
		case err := <-done:
			t.Fatalf("%s ended without ffmpeg instead of waiting: %v", r.Name, err)
		case <-time.After(200 * time.Millisecond): // still waiting, as it should
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s stopped with %v, want nil", r.Name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not stop with its context", r.Name)
		}
	}
}
