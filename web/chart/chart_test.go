package chart

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
)

func TestLineHasAxesTicksAndAValuePerPoint(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	pts := []Point{{t0, 3}, {t0.Add(time.Minute), 7}, {t0.Add(2 * time.Minute), 4}}
	var b bytes.Buffer
	if err := Line("attendance", pts, "participants", time.UTC).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{`aria-label="attendance"`, ">18:00<", ">18:02<", ">10<", ">0<", "18:01: 7 participants"} {
		if !strings.Contains(html, want) {
			t.Errorf("line chart lacks %q:\n%s", want, html)
		}
	}
}

func TestBarsShowEveryValueAndLabel(t *testing.T) {
	var b bytes.Buffer
	if err := Bars("distribution", []Bar{{"1–4 min", 2}, {"5–14 min", 1250}}).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{">1–4 min<", ">1,250<", ">2<", ">2,000<"} {
		if !strings.Contains(html, want) {
			t.Errorf("bar chart lacks %q:\n%s", want, html)
		}
	}
}

func TestNiceCeilEndsTheAxisOnARoundNumber(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 1: 1, 3: 5, 7: 10, 10: 10, 11: 20, 1250: 2000, 48: 50} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestTimeTicksAreRoundClockTimesBetweenTheEnds(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 14, 3, 0, 0, time.UTC)
	ticks := TimeTicks(t0, t0.Add(50*time.Minute), nil, func(time.Time) float64 { return 0 })
	var got []string
	for _, tk := range ticks {
		got = append(got, tk.Label)
	}
	if strings.Join(got, " ") != "14:10 14:20 14:30 14:40" {
		t.Errorf("ticks over 50 minutes = %v, want every 10 minutes on the clock", got)
	}
	days := TimeTicks(t0, t0.Add(20*24*time.Hour), time.UTC, func(time.Time) float64 { return 0 })
	if len(days) == 0 || days[0].Label != "Dec 7" {
		t.Errorf("ticks over 20 days = %v, want dates a week apart from Monday Dec 7", days)
	}
}

func TestNiceTicksAreRoundValuesInsideTheRange(t *testing.T) {
	got := NiceTicks(1000, 1800)
	want := []uint64{1200, 1400, 1600}
	if len(got) != len(want) {
		t.Fatalf("NiceTicks(1000, 1800) = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("NiceTicks(1000, 1800) = %v, want %v", got, want)
		}
	}
}

func TestPlotDrawsTheFrameAroundAProductsMarks(t *testing.T) {
	f := NewFrame(760, 280, 70, 15, 12, 32)
	f.YMin, f.YMax, f.XStart, f.XEnd = "1,000", "1,900", "Dec 1 14:03", "Dec 1 14:53 UTC"
	f.YTicks = []Tick{{At: "100.0", Label: "1,400"}}
	f.XTicks = []Tick{{At: "300.0", Label: "14:30"}}
	var b bytes.Buffer
	ctx := templ.WithChildren(context.Background(), Mark(f, "400.0", "marker-title", "#b54708", "2", "title changed"))
	if err := Plot("views over time", f).Render(ctx, &b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{`viewBox="0 0 760 280"`, ">1,000<", ">1,900<", ">1,400<", ">14:30<", ">Dec 1 14:53 UTC<",
		`class="marker marker-title"`, "<title>title changed</title>", `y2="248"`} {
		if !strings.Contains(html, want) {
			t.Errorf("plot lacks %q:\n%s", want, html)
		}
	}
}

func TestManyBarsKeepEveryValueInTooltipsAndThinTheirLabels(t *testing.T) {
	var bars []Bar
	for i := range 30 {
		bars = append(bars, Bar{Label: fmt.Sprintf("14:%02d", i), Value: float64(i)})
	}
	var b bytes.Buffer
	if err := Bars("events per second", bars).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{"<title>14:29: 29</title>", "<title>14:01: 1</title>", ">14:00<", ">50<"} {
		if !strings.Contains(html, want) {
			t.Errorf("bar chart lacks %q:\n%s", want, html)
		}
	}
	if labels := strings.Count(html, `fill="#5b6470">14:`); labels == 0 || labels > 12 {
		t.Errorf("%d time labels under 30 bars, want a readable few", labels)
	}
}
