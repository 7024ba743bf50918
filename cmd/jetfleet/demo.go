package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/blob"
	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
	"jetfleet/workers/tracker"
)

// Demo pace: ticks far faster than production so a newcomer sees curves
// grow, uploads appear and a thumbnail change within minutes.
const (
	demoChannelEvery = 20 * time.Second
	demoHourlyEvery  = 10 * time.Second
	demoDailyEvery   = 2 * time.Minute
	// demoHiResEvery is premium high-resolution sampling: a fifth of the
	// demo's "hour", so its curve is visibly finer than the hourly one.
	demoHiResEvery = 2 * time.Second
)

// startDemo serves the YouTube stand-in's demo world on a loopback port,
// points the tracker (cfg) at it with one-second slots, and fires the
// tracker's ticks at demo pace until ctx ends. It returns the lines to add
// to the dev summary.
func startDemo(ctx context.Context, cfg *config, js jetstream.JetStream, log *slog.Logger) (string, time.Time, error) {
	yt, chans, start, err := openDemoWorld(cfg.DataDir, time.Now)
	if err != nil {
		return "", start, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", start, fmt.Errorf("demo youtube: %w", err)
	}
	srv := &http.Server{Handler: yt.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go yt.RunDemo(ctx)
	url := "http://" + ln.Addr().String()
	cfg.YouTubeURL, cfg.YouTubeThumbURL = url, url
	cfg.TrackerSlot = time.Second

	googleURL, err := startDemoGoogle(ctx, cfg, yt, chans[1])
	if err != nil {
		return "", start, err
	}

	for name, every := range map[string]time.Duration{
		subjects.TrackerChannelTick: demoChannelEvery, subjects.TrackerVideoHourlyTick: demoHourlyEvery, subjects.TrackerVideoDailyTick: demoDailyEvery,
		subjects.TrackerVideoHiResTick: demoHiResEvery,
	} {
		go demoTicks(ctx, js, name, every, log)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  demo        YouTube stand-in at %s; ticks every %v (channels) / %v (videos) / %v (premium high resolution); track one of:\n", url, demoChannelEvery, demoHourlyEvery, demoHiResEvery)
	for _, c := range chans {
		fmt.Fprintf(&b, "                %-14s %s (%s)\n", c.Handle, c.Title, c.ID)
	}
	fmt.Fprintf(&b, "              %s has last week's history planted, with one outlier (%s); /tracker/outliers has \"send the digest now\"\n", chans[0].Handle, youtubetest.DemoOutlierID)
	fmt.Fprintf(&b, "              Google OAuth + YouTube Data API stand-in at %s: /tracker/abtests connects %s (one-minute A/B slots offered; try its video %s)\n", googleURL, chans[1].Title, yt.ChannelVideos(chans[1].ID)[0])
	return b.String(), start, nil
}

// plantDemoHistory writes what an hourly tracker would have sampled of
// the demo world in the week before it started (youtubetest.DemoHistory)
// and computes that week's outliers as the weekly job does
// (tracker.OutliersOfWeek: band snapshots in blobs), so a newcomer sees a
// band, an outlier and a digest without waiting a week. Rows are keyed by
// video and time, the outliers by week, and merging a week into a band
// snapshot again changes nothing: planting again on a restart changes
// nothing.
func plantDemoHistory(ctx context.Context, ch driver.Conn, blobs blob.Store, start time.Time, log *slog.Logger) error {
	w, err := analytics.NewBatchWriter(ch, analytics.WriterConfig{Table: "video_samples",
		Columns: []string{"video_id", "channel_id", "sampled_at", "views", "likes", "title", "thumb_hash"}}, log)
	if err != nil {
		return err
	}
	hist := youtubetest.DemoHistory(start)
	for _, s := range hist {
		if err := w.Append(ctx, s.VideoID, s.ChannelID, s.At.UTC(), uint64(s.Views), uint64(s.Views/40), s.Title, ""); err != nil {
			return fmt.Errorf("plant demo history: %w", err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		return fmt.Errorf("plant demo history: %w", err)
	}
	week := tracker.DigestWeek(time.Now())
	if err := tracker.OutliersOfWeek(ctx, ch, blobs, week, log); err != nil {
		return fmt.Errorf("demo outliers: %w", err)
	}
	log.Info("demo history planted", "samples", len(hist), "week", week.Format(time.DateOnly))
	return nil
}

// startDemoGoogle serves the Google OAuth and YouTube Data API stand-in on
// the demo world, as the account that owns channel ch, and points the A/B
// tests at it: a test's thumbnails and titles then change what the demo
// watch pages serve, and views respond to them, so a demo test has a
// result within minutes.
func startDemoGoogle(ctx context.Context, cfg *config, yt *youtubetest.Server, ch youtubetest.DemoChannel) (string, error) {
	g := youtubetest.NewGoogle(yt, youtubetest.GoogleConfig{ClientID: "jetfleet-demo.apps.googleusercontent.com", ClientSecret: "demo-secret", Channel: ch.ID})
	g.RespondToChanges(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo google: %w", err)
	}
	srv := &http.Server{Handler: g.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	url := "http://" + ln.Addr().String()
	cfg.GoogleClientID, cfg.GoogleClientSecret = "jetfleet-demo.apps.googleusercontent.com", "demo-secret"
	cfg.GoogleOAuthURL, cfg.GoogleTokenURL, cfg.GoogleAPIURL = url, url, url
	cfg.ABTestDemo = true
	return url, nil
}

// demoWorldFile keeps, in the data dir, when the demo world began.
const demoWorldFile = "demo-youtube.json"

// openDemoWorld returns the demo YouTube world of dataDir as it is now.
// The world is a function of its start time and the clock, and the start
// is kept in the data dir, so `make run` restarted on the same data
// continues the same world: the videos tracked before still exist with
// the titles and thumbnails the tracker recorded.
func openDemoWorld(dataDir string, now func() time.Time) (*youtubetest.Server, []youtubetest.DemoChannel, time.Time, error) {
	path := filepath.Join(dataDir, demoWorldFile)
	var rec struct {
		Start time.Time `json:"start"`
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &rec); err != nil || rec.Start.IsZero() {
			return nil, nil, rec.Start, fmt.Errorf("demo world %s is unreadable (delete it to start a new world): %v", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		rec.Start = now().UTC().Truncate(time.Second)
		b, _ := json.Marshal(rec)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, nil, rec.Start, fmt.Errorf("keep demo world start: %w", err)
		}
	default:
		return nil, nil, rec.Start, fmt.Errorf("read demo world: %w", err)
	}
	yt := youtubetest.New(youtubetest.Options{Now: now})
	chans := yt.PopulateDemo(youtubetest.DemoConfig{Start: rec.Start})
	return yt, chans, rec.Start, nil
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
