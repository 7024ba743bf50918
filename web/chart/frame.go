package chart

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Frame is the plot area of one SVG chart and everything around it: the
// axes, labelled gridlines on both axes, the ends of each axis. Every
// chart of the site is drawn in a Frame by Plot, so axes, ticks and sizing
// (the viewBox scales to the page at 1280 and 390 px through svg.chart in
// the stylesheet) look the same everywhere; a product draws its own marks
// (a band, change markers, variant segments) inside it.
type Frame struct {
	W, H           int
	Left, Right    int // plot area, x
	Top, Bottom    int // plot area, y
	XTicks, YTicks []Tick
	// End labels of the y axis, for axes whose ticks do not reach the
	// ends; "" draws none.
	YMin, YMax string
	// Labels under the x axis: at its start, middle (its unit or zone) and
	// end.
	XStart, XMid, XEnd string
}

// Tick is a labelled gridline: at X on the x axis, or at Y on the y axis.
type Tick struct {
	At    string
	Label string
}

// Dot is a point of a series with its figures as a tooltip.
type Dot struct {
	X, Y  string
	Label string
}

// Segment is a piece of a series drawn in its own colour (one series per
// colour, see SeriesColor) with its tooltip.
type Segment struct {
	X1, Y1, X2, Y2 string
	Color, Label   string
}

// NewFrame is a w×h chart whose plot area leaves left, right, top and
// bottom pixels for the labels.
func NewFrame(w, h, left, right, top, bottom int) Frame {
	return Frame{W: w, H: h, Left: left, Right: w - right, Top: top, Bottom: h - bottom}
}

// X maps a position between 0 and 1 onto the plot area.
func (f Frame) X(frac float64) float64 { return float64(f.Left) + float64(f.Right-f.Left)*frac }

// Y maps a position between 0 (bottom) and 1 (top) onto the plot area.
func (f Frame) Y(frac float64) float64 { return float64(f.Bottom) - float64(f.Bottom-f.Top)*frac }

// TimeX maps t in [t0, t1] onto the plot area.
func (f Frame) TimeX(t0, t1 time.Time) func(time.Time) float64 {
	return func(t time.Time) float64 { return f.X(t.Sub(t0).Seconds() / t1.Sub(t0).Seconds()) }
}

// seriesColors tell series apart: the first is the site's line colour.
var seriesColors = []string{"#2f6fed", "#d9480f", "#2b8a3e", "#ae3ec9"}

// SeriesColor is the colour of series i; a negative i is the grey of
// values that belong to no series.
func SeriesColor(i int) string {
	if i < 0 {
		return "#8a94a6"
	}
	return seriesColors[i%len(seriesColors)]
}

// tickSteps are the time-axis spacings a chart may use, from a minute (a
// few minutes of 2-minute samples) to a month (60 days daily).
var tickSteps = []time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 30 * 24 * time.Hour,
}

// TimeTicks are gridlines strictly between t0 and t1 at the smallest step
// of tickSteps that makes at most 5 of them, aligned to multiples of the
// step in loc (UTC if nil) and labelled with the clock under a day
// ("14:30"), the date from a day ("Mar 4").
func TimeTicks(t0, t1 time.Time, loc *time.Location, x func(time.Time) float64) []Tick {
	span := t1.Sub(t0)
	if span <= 0 {
		return nil
	}
	if loc == nil {
		loc = time.UTC
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
	_, offset := t0.In(loc).Zone()
	shift := time.Duration(offset) * time.Second
	var out []Tick
	for t := t0.Add(shift).Truncate(step).Add(step).Add(-shift); t.Before(t1); t = t.Add(step) {
		// Too close to an end label to be read beside it.
		if t.Sub(t0) < span/12 || t1.Sub(t) < span/12 {
			continue
		}
		out = append(out, Tick{At: f1(x(t)), Label: t.In(loc).Format(layout)})
	}
	return out
}

// NiceTicks are up to 3 round values strictly between lo and hi (1, 2 or
// 5 times a power of ten apart), for an axis whose ends are labelled.
func NiceTicks(lo, hi uint64) []uint64 {
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

// zeroTo are the ticks of an axis from 0 to hi in quarters, each
// labelled with its value, at y(v).
func zeroTo(hi float64, y func(float64) float64) []Tick {
	var out []Tick
	for i := 0; i <= 4; i++ {
		v := hi * float64(i) / 4
		out = append(out, Tick{At: f1(y(v)), Label: Value(v)})
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func viewBox(f Frame) string { return fmt.Sprintf("0 0 %d %d", f.W, f.H) }
