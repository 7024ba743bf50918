package tracker

import (
	"fmt"
	"math"
	"strings"
	"time"

	"jetfleet/analytics"
	"jetfleet/subjects"
	webchart "jetfleet/web/chart"
)

// chart is a views curve laid out in a chart.Frame: the polyline, a dot
// per sample, a marker per title or thumbnail change, the channel's band.
type chart struct {
	webchart.Frame
	Line           string
	Band           string // polygon of the channel's expected band; "" for none
	Median         string // polyline of the band's median
	Dots           []webchart.Dot
	Markers        []chartMarker
	Empty          bool
	SinglePointMsg bool
}

type chartMarker struct {
	X     string
	Kind  string // "title" or "thumbnail"
	Label string
}

// viewsFrame is the size of every Tracker chart.
func viewsFrame() webchart.Frame { return webchart.NewFrame(760, 280, 70, 15, 12, 32) }

// layoutChart maps samples to the plot area: time on x, views on y (the
// range padded so a flat line is visible), changes as vertical markers, and
// the channel's expected band (YouTube Studio's "typical performance") at
// the video's ages, counted from its first sample as the snapshot counts
// them.
func layoutChart(samples []analytics.VideoSample, changes []analytics.VideoChange, band []analytics.BandPoint) chart {
	c := chart{Frame: viewsFrame()}
	if len(samples) == 0 {
		c.Empty = true
		return c
	}
	t0, t1 := samples[0].At, samples[len(samples)-1].At
	for _, ch := range changes {
		if ch.At.Before(t0) {
			t0 = ch.At
		}
		if ch.At.After(t1) {
			t1 = ch.At
		}
	}
	if !t1.After(t0) {
		t1 = t0.Add(time.Hour)
		c.SinglePointMsg = true
	}
	lo, hi := samples[0].Views, samples[0].Views
	for _, s := range samples {
		lo, hi = min(lo, s.Views), max(hi, s.Views)
	}
	origin := samples[0].At
	var inRange []analytics.BandPoint
	for _, b := range band {
		if !origin.Add(time.Duration(b.AgeHours) * time.Hour).After(t1) {
			inRange = append(inRange, b)
			lo, hi = min(lo, uint64(b.P25)), max(hi, uint64(math.Ceil(b.P75)))
		}
	}
	if hi == lo {
		hi = lo + 10
		if lo >= 10 {
			lo -= 10
		}
	}
	x := c.TimeX(t0, t1)
	y := func(v uint64) float64 { return c.Y((float64(v) - float64(lo)) / float64(hi-lo)) }
	var pts []string
	// A dot (with its figures on hover) per sample reads well up to a
	// couple of hundred; a day sampled every 2 minutes has 720, so beyond
	// that every k-th sample (and the last) gets one and the line carries
	// the rest.
	every := max(1, (len(samples)+maxDots-1)/maxDots)
	for i, s := range samples {
		px, py := x(s.At), y(s.Views)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
		if i%every != 0 && i != len(samples)-1 {
			continue
		}
		c.Dots = append(c.Dots, webchart.Dot{X: fmt.Sprintf("%.1f", px), Y: fmt.Sprintf("%.1f", py),
			Label: fmt.Sprintf("%s UTC: %s views", s.At.UTC().Format("2006-01-02 15:04:05"), groupDigits(s.Views))})
	}
	c.Line = strings.Join(pts, " ")
	if len(inRange) > 0 {
		at := func(b analytics.BandPoint) float64 { return x(origin.Add(time.Duration(b.AgeHours) * time.Hour)) }
		c.Band, c.Median = bandShapes(inRange, at, func(v float64) float64 { return y(uint64(math.Round(v))) })
	}
	for _, ch := range changes {
		label, dx := "thumbnail changed", 0.0
		if ch.Kind == "title" {
			// Beside, not on top of, a thumbnail change at the same time.
			label, dx = fmt.Sprintf("title: %q → %q", ch.Before, ch.After), 3
		}
		c.Markers = append(c.Markers, chartMarker{X: fmt.Sprintf("%.1f", x(ch.At)+dx), Kind: ch.Kind,
			Label: ch.At.UTC().Format("2006-01-02 15:04:05") + " UTC: " + label})
	}
	c.YMin, c.YMax = groupDigits(lo), groupDigits(hi)
	c.XStart, c.XEnd = t0.UTC().Format("Jan 2 15:04:05"), t1.UTC().Format("Jan 2 15:04:05")+" UTC"
	c.XTicks = webchart.TimeTicks(t0, t1, time.UTC, x)
	for _, v := range webchart.NiceTicks(lo, hi) {
		c.YTicks = append(c.YTicks, webchart.Tick{At: fmt.Sprintf("%.1f", y(v)), Label: groupDigits(v)})
	}
	return c
}

// maxDots bounds the dots of one chart.
const maxDots = 180

// groupDigits writes n with thousands separators.
func groupDigits[T int64 | uint64](n T) string { return analytics.GroupDigits(int64(n)) }

func markerColor(kind string) string {
	if kind == "title" {
		return "#b54708"
	}
	return "#7a2ff0"
}

func channelName(c subjects.TrackerChannel) string {
	if c.Title != "" {
		return c.Title
	}
	return c.ID
}

func videoName(v subjects.TrackerVideo) string {
	if v.Title != "" {
		return v.Title
	}
	return v.ID
}
