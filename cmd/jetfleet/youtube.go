package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/youtube"
)

// newYouTube builds the YouTube client from YOUTUBE_URL, YOUTUBE_THUMB_URL
// and YOUTUBE_RATE. Its refusal and circuit metrics go to reg (nil: not
// exported); clients of one process share them.
func newYouTube(cfg *config, reg prometheus.Registerer) (*youtube.Client, error) {
	c, err := youtube.New(youtube.Config{BaseURL: cfg.YouTubeURL, ThumbnailURL: cfg.YouTubeThumbURL, RatePerSecond: float64(cfg.YouTubeRate),
		Metrics: youtube.NewMetrics(reg)})
	if err != nil {
		return nil, fmt.Errorf("YOUTUBE_URL / YOUTUBE_THUMB_URL: %w", err)
	}
	return c, nil
}
