package youtubetest

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DemoChannel is one channel of the demo world, for the welcome text.
type DemoChannel struct {
	ID, Handle, Title string
}

// DemoConfig tunes how lively the demo world is.
type DemoConfig struct {
	// Speed multiplies view growth (and the pace of events below) so a
	// newcomer sees curves move within minutes; default 60.
	Speed float64
	// UploadEvery publishes a new video on one of the channels; default 4m.
	UploadEvery time.Duration
	// ChangeAfter changes the thumbnail and title of the newest video of
	// the first channel; default 3m. It repeats every ChangeAfter.
	ChangeAfter time.Duration
}

func (c *DemoConfig) defaults() {
	if c.Speed <= 0 {
		c.Speed = 60
	}
	if c.UploadEvery <= 0 {
		c.UploadEvery = 4 * time.Minute
	}
	if c.ChangeAfter <= 0 {
		c.ChangeAfter = 3 * time.Minute
	}
}

func demoChannelID(name string) string {
	return "UC" + (name + strings.Repeat("0", 22))[:22]
}

// DemoChannels are the channels of the demo world.
func DemoChannels() []DemoChannel {
	return []DemoChannel{
		{ID: demoChannelID("jetfleetRocketLab"), Handle: "@rocketlab", Title: "Rocket Lab Weekly"},
		{ID: demoChannelID("jetfleetKitchen"), Handle: "@adaskitchen", Title: "Ada's Kitchen"},
		{ID: demoChannelID("jetfleetGophers"), Handle: "@gophertalks", Title: "Gopher Talks"},
	}
}

var demoTitles = [][]string{
	{"We built a rocket engine in a garage", "Static fire #2: what went wrong", "Landing legs, explained", "Why we switched to methane"},
	{"Sourdough for people in a hurry", "One-pan pasta, five ways", "The perfect omelette (really)", "Knife skills in 10 minutes"},
	{"Goroutines are not threads", "JetStream in 12 minutes", "Generics two years later", "Profiling a slow service live"},
}

// PopulateDemo fills the server with the demo world: three channels, each
// with a few recent videos whose views grow.
func (s *Server) PopulateDemo(cfg DemoConfig) []DemoChannel {
	cfg.defaults()
	now := s.now()
	chans := DemoChannels()
	for i, ch := range chans {
		s.AddChannel(ch.ID, ch.Handle, ch.Title)
		for j, title := range demoTitles[i][:3] {
			id := demoVideoID(i, j)
			age := time.Duration(3-j) * 26 * time.Hour
			s.AddVideo(ch.ID, id, title, now.Add(-age), int64(5000*(3-j)+1200*i))
			s.SetGrowth(id, cfg.Speed*float64(2+i+j)/10)
		}
	}
	return chans
}

func demoVideoID(channel, n int) string {
	return fmt.Sprintf("demo%d%06d", channel, n)
}

// RunDemo keeps the demo world moving until ctx ends: a new upload every
// UploadEvery, a thumbnail and title change every ChangeAfter.
func (s *Server) RunDemo(ctx context.Context, cfg DemoConfig) {
	cfg.defaults()
	chans := DemoChannels()
	uploads, changes := 0, 0
	go every(ctx, cfg.ChangeAfter, func() {
		changes++
		vids := s.ChannelVideos(chans[0].ID)
		if len(vids) == 0 {
			return
		}
		id := vids[len(vids)-1]
		s.ChangeThumbnail(id)
		s.mu.RLock()
		title := s.videos[id].title
		s.mu.RUnlock()
		s.SetTitle(id, fmt.Sprintf("%s (new thumbnail #%d)", strings.SplitN(title, " (new thumbnail", 2)[0], changes))
	})
	every(ctx, cfg.UploadEvery, func() {
		i := uploads % len(chans)
		n := 3 + uploads/len(chans)
		uploads++
		titles := demoTitles[i]
		id := demoVideoID(i, n)
		s.AddVideo(chans[i].ID, id, fmt.Sprintf("%s, part %d", titles[n%len(titles)], n), s.now(), 0)
		// A fresh upload grows fastest.
		s.SetGrowth(id, cfg.Speed*2)
	})
}
