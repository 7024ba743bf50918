package main

import (
	"fmt"

	"jetfleet/internal/youtube"
	"jetfleet/workers/tracker"
)

// newYouTube builds the YouTube client from YOUTUBE_URL, YOUTUBE_THUMB_URL
// and YOUTUBE_RATE.
func newYouTube(cfg *config) (*youtube.Client, error) {
	c, err := youtube.New(youtube.Config{BaseURL: cfg.YouTubeURL, ThumbnailURL: cfg.YouTubeThumbURL, RatePerSecond: float64(cfg.YouTubeRate)})
	if err != nil {
		return nil, fmt.Errorf("YOUTUBE_URL / YOUTUBE_THUMB_URL: %w", err)
	}
	return c, nil
}

// trackerConfig is the tracker roles' configuration.
func trackerConfig(cfg *config) tracker.Config {
	s := cfg.TrackerSlot
	return tracker.Config{
		Slots:            tracker.Slots{Channel: s, Hourly: s, Daily: s},
		VideoConcurrency: cfg.TrackerConcurrency,
	}
}
