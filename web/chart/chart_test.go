package chart

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
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
