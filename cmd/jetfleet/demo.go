package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
)

// Demo pace: ticks far faster than production so a newcomer sees curves
// grow, uploads appear and a thumbnail change within minutes.
const (
	demoChannelEvery = 20 * time.Second
	demoHourlyEvery  = 10 * time.Second
	demoDailyEvery   = 2 * time.Minute
)

// startDemo serves the YouTube stand-in's demo world on a loopback port,
// points the tracker (cfg) at it with one-second slots, and fires the
// tracker's ticks at demo pace until ctx ends. It returns the lines to add
// to the dev summary.
func startDemo(ctx context.Context, cfg *config, js jetstream.JetStream, log *slog.Logger) (string, error) {
	yt := youtubetest.New(youtubetest.Options{})
	chans := yt.PopulateDemo(youtubetest.DemoConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo youtube: %w", err)
	}
	srv := &http.Server{Handler: yt.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go yt.RunDemo(ctx, youtubetest.DemoConfig{})
	url := "http://" + ln.Addr().String()
	cfg.YouTubeURL, cfg.YouTubeThumbURL = url, url
	cfg.TrackerSlot = time.Second

	for name, every := range map[string]time.Duration{
		subjects.ChannelTick: demoChannelEvery, subjects.VideoHourlyTick: demoHourlyEvery, subjects.VideoDailyTick: demoDailyEvery,
	} {
		go demoTicks(ctx, js, name, every, log)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  demo        YouTube stand-in at %s; ticks every %v (channels) / %v (videos); track one of:\n", url, demoChannelEvery, demoHourlyEvery)
	for _, c := range chans {
		fmt.Fprintf(&b, "                %-14s %s (%s)\n", c.Handle, c.Title, c.ID)
	}
	return b.String(), nil
}

// demoTicks publishes the schedule's tick every d, as the server-side
// schedule does hourly in production.
func demoTicks(ctx context.Context, js jetstream.JetStream, name string, d time.Duration, log *slog.Logger) {
	payload, _ := json.Marshal(subjects.Tick{Schedule: name})
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := js.Publish(ctx, subjects.ScheduleTick(name), payload); err != nil && ctx.Err() == nil {
			log.Warn("demo tick", "schedule", name, "err", err)
		}
	}
}

// writeDemo prints the demo lines of the dev summary.
func writeDemo(w io.Writer, s string) {
	if s != "" {
		fmt.Fprint(w, s)
	}
}
