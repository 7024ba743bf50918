package abstats

import (
	"math"
	"testing"
	"time"
)

func TestStudentTUpperMatchesTables(t *testing.T) {
	for _, c := range []struct{ t, df, want float64 }{
		{0, 5, 0.5},
		{2.015, 5, 0.05},   // t table, one-sided 0.05, df 5
		{1.812, 10, 0.05},  // df 10
		{2.764, 10, 0.01},  // df 10, 0.01
		{1.645, 1e6, 0.05}, // normal limit
		{-1.812, 10, 0.95},
	} {
		if got := StudentTUpper(c.t, c.df); math.Abs(got-c.want) > 0.002 {
			t.Errorf("P(T>%v; df %v) = %.4f, want %.4f", c.t, c.df, got, c.want)
		}
	}
}

// curve builds hourly cumulative samples of a video whose views per hour
// are k·age^b, multiplied by lift[v] while variant v is live (slots of
// slotHours, variants alternating in the order given), with optional
// noise per interval.
func curve(published time.Time, startAge, hours, slotHours int, k, b float64, order []int, lift []float64, noise func(i int) float64) ([]Sample, []Window) {
	start := published.Add(time.Duration(startAge) * time.Hour)
	var samples []Sample
	var windows []Window
	views := 1000.0
	samples = append(samples, Sample{At: start, Views: views})
	for h := 0; h < hours; h++ {
		slot := h / slotHours
		v := order[slot%len(order)]
		if h%slotHours == 0 {
			windows = append(windows, Window{Variant: v, Start: start.Add(time.Duration(h) * time.Hour), End: start.Add(time.Duration(h+slotHours) * time.Hour)})
		}
		age := float64(startAge+h) + 0.5
		rate := k * math.Pow(age, b) * lift[v]
		if noise != nil {
			rate *= math.Exp(noise(h))
		}
		views += rate
		samples = append(samples, Sample{At: start.Add(time.Duration(h+1) * time.Hour), Views: views})
	}
	return samples, windows
}

// wobble is deterministic noise of about ±5%.
func wobble(i int) float64 { return 0.05 * math.Sin(float64(i)*1.7+0.3) }

func TestAnalyseOnKnownCurves(t *testing.T) {
	pub := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name       string
		b          float64
		order      []int
		lift       []float64
		noise      func(int) float64
		wantWinner int
		wantLift   float64 // of the winner over the runner-up, when there is one
	}{
		// Same appeal, steep decay: B runs later in each pair of slots,
		// yet neither wins once age is accounted for.
		{name: "equal variants on a decaying curve", b: -0.8, order: []int{0, 1}, lift: []float64{1, 1}, noise: wobble, wantWinner: -1},
		// B is 20% better although every B slot is older than the A slot
		// before it.
		{name: "later variant that is better wins", b: -0.8, order: []int{0, 1}, lift: []float64{1, 1.2}, noise: wobble, wantWinner: 1, wantLift: 0.2},
		{name: "first of three wins", b: -0.5, order: []int{0, 1, 2}, lift: []float64{1.3, 1, 1.05}, noise: wobble, wantWinner: 0, wantLift: 1.3/1.05 - 1},
		{name: "flat curve, better B", b: 0, order: []int{1, 0}, lift: []float64{1, 1.1}, noise: wobble, wantWinner: 1, wantLift: 0.1},
	} {
		t.Run(c.name, func(t *testing.T) {
			samples, windows := curve(pub, 24, 96, 6, 500, c.b, c.order, c.lift, c.noise)
			r := Analyse(samples, windows, pub, len(c.lift))
			if r.Winner != c.wantWinner {
				t.Fatalf("winner = %d (confidence %.3f, note %q, variants %+v), want %d", r.Winner, r.Confidence, r.Note, r.Variants, c.wantWinner)
			}
			if math.Abs(r.Exponent-c.b) > 0.1 {
				t.Errorf("fitted exponent %.3f, want about %.2f", r.Exponent, c.b)
			}
			if c.wantWinner >= 0 {
				if r.Confidence < MinConfidence || math.Abs(r.Lift-c.wantLift) > 0.05 {
					t.Errorf("lift %.3f confidence %.3f, want lift about %.3f with confidence ≥ %.2f", r.Lift, r.Confidence, c.wantLift, MinConfidence)
				}
			} else if r.Note == "" {
				t.Error("no winner but no note saying why")
			}
		})
	}
}

func TestUnadjustedComparisonWouldPickTheEarlierVariant(t *testing.T) {
	// The point of the age adjustment: on a steep decay with equal
	// variants, raw views per hour favour whichever ran first.
	pub := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	samples, windows := curve(pub, 2, 12, 6, 500, -1, []int{0, 1}, []float64{1, 1}, nil)
	r := Analyse(samples, windows, pub, 2)
	if r.Variants[0].ViewsPerHour <= r.Variants[1].ViewsPerHour*1.5 {
		t.Fatalf("raw rates %v vs %v: expected the earlier variant far ahead", r.Variants[0].ViewsPerHour, r.Variants[1].ViewsPerHour)
	}
	if math.Abs(r.Variants[0].Adjusted-r.Variants[1].Adjusted) > 0.01 {
		t.Fatalf("adjusted %v vs %v, want equal", r.Variants[0].Adjusted, r.Variants[1].Adjusted)
	}
}

func TestTooLittleDataIsNoWinner(t *testing.T) {
	pub := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	samples, windows := curve(pub, 24, 2, 1, 500, -0.5, []int{0, 1}, []float64{1, 2}, nil)
	if r := Analyse(samples, windows, pub, 2); r.Winner != -1 || r.Note == "" {
		t.Fatalf("winner %d note %q from one interval per variant", r.Winner, r.Note)
	}
	if r := Analyse(nil, nil, pub, 2); r.Winner != -1 || r.Note == "" {
		t.Fatalf("winner %d note %q from no samples", r.Winner, r.Note)
	}
}
