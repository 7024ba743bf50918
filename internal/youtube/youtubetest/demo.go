package youtubetest

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
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
	// Start is when the world began; default the server's now. Everything
	// in the world is a function of Start and the clock: its first videos
	// were published before Start, upload k happens at Start+(k+1)·
	// UploadEvery, change c at Start+c·ChangeAfter. So a world populated
	// again with the same Start (jetfleet dev keeps it in its data dir) is
	// the same world, and a tracker that knew it before a restart finds
	// the same videos, titles and thumbnails.
	Start time.Time
}

func (c *DemoConfig) defaults(now time.Time) {
	if c.Speed <= 0 {
		c.Speed = 60
	}
	if c.UploadEvery <= 0 {
		c.UploadEvery = 4 * time.Minute
	}
	if c.ChangeAfter <= 0 {
		c.ChangeAfter = 3 * time.Minute
	}
	if c.Start.IsZero() {
		c.Start = now
	}
}

// demoWorld is the timeline of a populated demo world: its config and how
// many of its scheduled uploads and changes have happened.
type demoWorld struct {
	mu               sync.Mutex
	cfg              DemoConfig
	uploads, changes int
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

// PopulateDemo fills the server with the demo world as it is at the
// server's now: three channels, each with a few videos published before
// cfg.Start whose views grow, plus every upload and change scheduled
// between cfg.Start and now. RunDemo keeps it moving.
func (s *Server) PopulateDemo(cfg DemoConfig) []DemoChannel {
	cfg.defaults(s.now())
	chans := DemoChannels()
	for i, ch := range chans {
		s.AddChannel(ch.ID, ch.Handle, ch.Title)
		if i == 0 {
			// The first channel's back catalogue: the week before Start,
			// one video far above the others (DemoHistory is how the
			// tracker saw it). Added first, as the oldest uploads: the
			// channel's newest video is still the one whose thumbnail
			// changes.
			for _, v := range demoCatalogue(cfg.Start) {
				s.addDemoVideo(ch.ID, v.ID, v.Title, v.Published, cfg.Start, v.viewsAt(cfg.Start), 0.02*v.factor)
			}
		}
		for j, title := range demoTitles[i][:3] {
			age := time.Duration(3-j) * 26 * time.Hour
			s.addDemoVideo(ch.ID, demoVideoID(i, j), title, cfg.Start.Add(-age), cfg.Start,
				int64(5000*(3-j)+1200*i), cfg.Speed*float64(2+i+j)/10)
		}
	}
	s.mu.Lock()
	s.demo = &demoWorld{cfg: cfg}
	s.mu.Unlock()
	s.advanceDemo(s.now())
	return chans
}

// DemoSample is one sample of the demo world's history.
type DemoSample struct {
	VideoID, ChannelID, Title string
	At                        time.Time
	Views                     int64
}

// demoPast is one video of the first channel's back catalogue.
type demoPast struct {
	ID, Title string
	Published time.Time
	factor    float64 // how well it does against the channel's usual curve
}

// DemoOutlierID is the back-catalogue video planted far above its
// channel's band, so the weekly outliers have something to show.
const DemoOutlierID = "demo0past07"

// demoCatalogue is the first channel's back catalogue: eight videos
// published 18 hours apart through the full week (Monday to Sunday, UTC)
// before the one of start, the last of them five times as watched as the
// others at the same age.
func demoCatalogue(start time.Time) []demoPast {
	week := start.UTC().Truncate(24*time.Hour).AddDate(0, 0, -((int(start.UTC().Weekday())+6)%7)-7)
	titles := []string{"Engine teardown", "Test stand tour", "Nozzle machining", "Fuel pump deep dive",
		"Avionics bench", "Launch site scouting", "Recovery drills", "We finally flew it"}
	var out []demoPast
	for k, t := range titles {
		f := 0.8 + 0.06*float64(k%5)
		id := fmt.Sprintf("demo0past%02d", k)
		if id == DemoOutlierID {
			f = 5
		}
		out = append(out, demoPast{ID: id, Title: t, Published: week.Add(time.Duration(k) * 18 * time.Hour), factor: f})
	}
	return out
}

// viewsAt is the video's views at t on the channel's usual curve (a few
// hundred views in its first hour, slowing after), scaled by its factor.
func (v demoPast) viewsAt(t time.Time) int64 {
	h := max(t.Sub(v.Published).Hours(), 0)
	return int64(v.factor * 400 * math.Pow(h+1, 0.6))
}

// DemoHistory is what an hourly tracker would have sampled of the first
// channel's back catalogue before start: one sample an hour from each
// video's publication until the end of the week before start's. jetfleet
// dev --demo writes it to ClickHouse, so the weekly outliers (and the
// digest) have a week to report on from the first minute.
func DemoHistory(start time.Time) []DemoSample {
	chans := DemoChannels()
	var out []DemoSample
	for _, v := range demoCatalogue(start) {
		end := v.Published.Truncate(24*time.Hour).AddDate(0, 0, 7-((int(v.Published.Weekday())+6)%7))
		for at := v.Published; at.Before(end) && at.Before(start); at = at.Add(time.Hour) {
			out = append(out, DemoSample{VideoID: v.ID, ChannelID: chans[0].ID, Title: v.Title, At: at, Views: v.viewsAt(at)})
		}
	}
	return out
}

func demoVideoID(channel, n int) string {
	return fmt.Sprintf("demo%d%06d", channel, n)
}

// addDemoVideo publishes a video whose views were views at `at` and grow by
// perSecond from then on, so its count at any later moment depends only on
// the timeline, not on when the process started.
func (s *Server) addDemoVideo(channelID, id, title string, published, at time.Time, views int64, perSecond float64) {
	s.AddVideo(channelID, id, title, published, views)
	s.with(id, func(v *video) { v.grownAt, v.perSecond = at, perSecond })
}

// advanceDemo applies, in time order, every upload and change of the
// timeline due by now that has not happened yet, each at its own time.
func (s *Server) advanceDemo(now time.Time) {
	s.mu.RLock()
	w := s.demo
	s.mu.RUnlock()
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	chans := DemoChannels()
	for {
		upload := w.cfg.Start.Add(time.Duration(w.uploads+1) * w.cfg.UploadEvery)
		change := w.cfg.Start.Add(time.Duration(w.changes+1) * w.cfg.ChangeAfter)
		if upload.After(now) && change.After(now) {
			return
		}
		if !upload.After(change) {
			i, n := w.uploads%len(chans), 3+w.uploads/len(chans)
			titles := demoTitles[i]
			// A fresh upload grows fastest.
			s.addDemoVideo(chans[i].ID, demoVideoID(i, n), fmt.Sprintf("%s, part %d", titles[n%len(titles)], n), upload, upload, 0, w.cfg.Speed*2)
			w.uploads++
			continue
		}
		w.changes++
		vids := s.ChannelVideos(chans[0].ID)
		id := vids[len(vids)-1]
		s.with(id, func(v *video) {
			v.thumb++
			v.title = fmt.Sprintf("%s (new thumbnail #%d)", strings.SplitN(v.title, " (new thumbnail", 2)[0], w.changes)
		})
	}
}

// demoNext is when the next upload or change of the timeline is due.
func (s *Server) demoNext() (time.Time, bool) {
	s.mu.RLock()
	w := s.demo
	s.mu.RUnlock()
	if w == nil {
		return time.Time{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	upload := w.cfg.Start.Add(time.Duration(w.uploads+1) * w.cfg.UploadEvery)
	change := w.cfg.Start.Add(time.Duration(w.changes+1) * w.cfg.ChangeAfter)
	if change.Before(upload) {
		return change, true
	}
	return upload, true
}

// RunDemo keeps the world populated by PopulateDemo moving until ctx ends:
// uploads and changes happen when the server's clock reaches their time on
// the timeline. Without PopulateDemo it returns at once.
func (s *Server) RunDemo(ctx context.Context) {
	for {
		s.advanceDemo(s.now())
		next, ok := s.demoNext()
		if !ok {
			return
		}
		// Look again at least every second: the clock may be a test's.
		wait := min(max(next.Sub(s.now()), time.Millisecond), time.Second)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
