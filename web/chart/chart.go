// Package chart draws every server-rendered SVG chart of the site (templ
// components in chart.templ). Plot draws a Frame — axes, labelled
// gridlines (TimeTicks, NiceTicks), end labels, a viewBox the stylesheet
// scales to 1280 and 390 px — around marks a page adds with Series, Dots,
// Segments (one colour per series, SeriesColor), Band and Mark; Line (a
// value over time) and Bars (labelled values) are whole charts built the
// same way. Products draw their own charts (the Tracker's band, change
// marks and variant colouring) from these parts rather than their own SVG.
package chart

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"jetfleet/analytics"
)

// Point is one value at an instant.
type Point struct {
	At    time.Time
	Value float64
}

// Bar is one labelled value.
type Bar struct {
	Label string
	Value float64
}

// Size of the Line and Bars charts; the stylesheet scales the viewBox to
// the page.
func frame() Frame { return NewFrame(720, 240, 56, 16, 14, 36) }

// lineLayout is a Line chart ready for its template.
type lineLayout struct {
	Frame
	Points string // polyline
	Dots   []Dot
	Empty  bool
}

// layoutLine scales points (oldest first) into the plot area; loc is the
// time zone of the x axis.
func layoutLine(points []Point, unit string, loc *time.Location) lineLayout {
	l := lineLayout{Frame: frame()}
	if len(points) == 0 {
		l.Empty = true
		return l
	}
	if loc == nil {
		loc = time.UTC
	}
	t0, t1 := points[0].At, points[len(points)-1].At
	if !t1.After(t0) {
		t1 = t0.Add(time.Minute)
	}
	hi := 0.0
	for _, p := range points {
		hi = max(hi, p.Value)
	}
	hi = niceCeil(hi)
	x := l.TimeX(t0, t1)
	y := func(v float64) float64 { return l.Y(v / hi) }
	var b strings.Builder
	for _, p := range points {
		fmt.Fprintf(&b, "%.1f,%.1f ", x(p.At), y(p.Value))
		// Many points: dots only where a tooltip stays readable.
		if len(points) <= 120 {
			l.Dots = append(l.Dots, Dot{X: f1(x(p.At)), Y: f1(y(p.Value)), Label: p.At.In(loc).Format("2 Jan 15:04") + ": " + Value(p.Value) + " " + unit})
		}
	}
	l.Points = strings.TrimSpace(b.String())
	l.YTicks = zeroTo(hi, y)
	layout := "2 Jan 15:04"
	if t1.Sub(t0) < 24*time.Hour && t0.In(loc).YearDay() == t1.In(loc).YearDay() {
		layout = "15:04"
	}
	l.XStart, l.XEnd = t0.In(loc).Format(layout), t1.In(loc).Format(layout)
	l.XMid = loc.String()
	return l
}

// barLayout is a Bars chart ready for its template.
type barLayout struct {
	Frame
	Bars  []barBox
	Empty bool
}

type barBox struct {
	X, Y, W, H   string
	CX, LabelY   string
	ValueY       string
	Label, Value string // "" when there is no room to show it
	Title        string
}

func layoutBars(bars []Bar) barLayout {
	l := barLayout{Frame: frame()}
	if len(bars) == 0 {
		l.Empty = true
		return l
	}
	hi := 0.0
	for _, b := range bars {
		hi = max(hi, b.Value)
	}
	hi = niceCeil(hi)
	slot := float64(l.Right-l.Left) / float64(len(bars))
	// Labels need about 64 px and values 36 px to be read side by side (at
	// 390 px wide the viewBox shrinks to about half): with many bars only
	// every k-th bar is labelled, and the values are read from the y axis
	// and each bar's tooltip.
	every := max(1, int(math.Ceil(64/slot)))
	showValues := slot >= 36
	for i, b := range bars {
		h := float64(l.Bottom-l.Top) * b.Value / hi
		x := l.X(0) + slot*float64(i) + slot*0.15
		box := barBox{
			X: f1(x), Y: f1(float64(l.Bottom) - h), W: f1(slot * 0.7), H: f1(h),
			CX: f1(x + slot*0.35), LabelY: strconv.Itoa(l.Bottom + 16), ValueY: f1(float64(l.Bottom) - h - 4),
			Title: b.Label + ": " + Value(b.Value),
		}
		if i%every == 0 {
			box.Label = b.Label
		}
		if showValues {
			box.Value = Value(b.Value)
		}
		l.Bars = append(l.Bars, box)
	}
	l.YTicks = zeroTo(hi, func(v float64) float64 { return l.Y(v / hi) })
	return l
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1), so
// the y axis ends on a round number.
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// Value formats a value: whole numbers with thousands separators, others
// with one decimal.
func Value(v float64) string {
	if v == float64(int64(v)) {
		return analytics.GroupDigits(int64(v))
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
