package tracker

import (
	"fmt"
	"math"
	"strings"
	"time"

	"jetfleet/analytics"
	"jetfleet/subjects"
)

// chart is a views curve laid out for a server-rendered SVG: the polyline,
// a dot per sample, a marker per title or thumbnail change, axis labels.
type chart struct {
	W, H           int
	Left, Right    int // plot area, x
	Top, Bottom    int // plot area, y
	Line           string
	Band           string // polygon of the channel's expected band; "" for none
	Median         string // polyline of the band's median
	Dots           []chartDot
	Markers        []chartMarker
	YMin, YMax     string
	XStart, XEnd   string
	XTicks, YTicks []chartTick // gridlines between the ends, with labels
	Empty          bool
	SinglePointMsg bool
}

// chartTick is a labelled gridline: at X on the time axis, or at Y on the
// views axis.
type chartTick struct {
	At    string
	Label string
}

type chartDot struct {
	X, Y  string
	Label string
}

type chartMarker struct {
	X     string
	Kind  string // "title" or "thumbnail"
	Label string
}

const (
	chartW = 760
	chartH = 280
)

// layoutChart maps samples to the plot area: time on x, views on y (the
// range padded so a flat line is visible), changes as vertical markers, and
// the channel's expected band (YouTube Studio's "typical performance") at
// the video's ages, counted from its first sample as the snapshot counts
// them.
func layoutChart(samples []analytics.VideoSample, changes []analytics.VideoChange, band []analytics.BandPoint) chart {
	c := chart{W: chartW, H: chartH, Left: 70, Right: chartW - 15, Top: 12, Bottom: chartH - 32}
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
	x := func(t time.Time) float64 {
		return float64(c.Left) + float64(c.Right-c.Left)*t.Sub(t0).Seconds()/t1.Sub(t0).Seconds()
	}
	y := func(v uint64) float64 {
		return float64(c.Bottom) - float64(c.Bottom-c.Top)*float64(v-lo)/float64(hi-lo)
	}
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
		c.Dots = append(c.Dots, chartDot{X: fmt.Sprintf("%.1f", px), Y: fmt.Sprintf("%.1f", py),
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
	c.XTicks = timeTicks(t0, t1, func(t time.Time) float64 { return x(t) })
	for _, v := range niceTicks(lo, hi) {
		c.YTicks = append(c.YTicks, chartTick{At: fmt.Sprintf("%.1f", y(v)), Label: groupDigits(v)})
	}
	return c
}

// maxDots bounds the dots of one chart.
const maxDots = 180

// tickSteps are the time-axis spacings a chart may use, from a minute (a
// few minutes of 2-minute samples) to a month (60 days daily).
var tickSteps = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 30 * 24 * time.Hour,
}

// timeTicks are gridlines strictly between t0 and t1 at the smallest step
// of tickSteps that makes at most 5 of them, aligned to UTC multiples of
// the step and labelled with the clock under a day ("14:30"), the date
// from a day ("Mar 4").
func timeTicks(t0, t1 time.Time, x func(time.Time) float64) []chartTick {
	span := t1.Sub(t0)
	if span <= 0 {
		return nil
	}
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if span/s <= 5 {
			step = s
			break
		}
	}
	layout := "15:04"
	if step >= 24*time.Hour {
		layout = "Jan 2"
	}
	var out []chartTick
	for t := t0.UTC().Truncate(step).Add(step); t.Before(t1); t = t.Add(step) {
		// Too close to an end label to be read beside it.
		if t.Sub(t0) < span/12 || t1.Sub(t) < span/12 {
			continue
		}
		out = append(out, chartTick{At: fmt.Sprintf("%.1f", x(t)), Label: t.Format(layout)})
	}
	return out
}

// niceTicks are up to 3 round values strictly between lo and hi (1, 2 or
// 5 times a power of ten apart), for the views axis.
func niceTicks(lo, hi uint64) []uint64 {
	if hi <= lo {
		return nil
	}
	span := float64(hi - lo)
	step := math.Pow(10, math.Floor(math.Log10(span/4)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 4 {
			step *= m
			break
		}
	}
	st := uint64(max(step, 1))
	var out []uint64
	for v := (lo/st + 1) * st; v < hi; v += st {
		// Not so close to the ends that labels overlap.
		if float64(v-lo) < span/10 || float64(hi-v) < span/10 {
			continue
		}
		out = append(out, v)
	}
	return out
}

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
