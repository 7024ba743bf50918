// Package abstats is the arithmetic of an A/B test's wrap-up: views gained
// per hour in each variant's windows, adjusted for the video's age, and a
// winner with a confidence figure.
//
// A video's views per hour decay with age, so a variant that happened to
// run later would look worse. We fit the video's own decay curve,
// log(views/hour) = a_v + b·log(age in hours), by least squares over every
// sample interval of the test with one level a_v per variant and a shared
// slope b (the slope is estimated within each variant's intervals, so a
// better variant that happened to run earlier or later does not bend the
// curve), and compare the variants on their intervals' residuals from the
// common curve (how far above or below it each interval was). The best variant is compared with the runner-up with Welch's t
// test; its one-sided p-value gives the confidence (1 − p).
package abstats

import (
	"math"
	"sort"
	"time"
)

// Sample is a cumulative view count at a time.
type Sample struct {
	At    time.Time
	Views float64
}

// Window is a span during which one variant was live.
type Window struct {
	Variant    int
	Start, End time.Time
}

// VariantStats are one variant's figures.
type VariantStats struct {
	Variant      int
	Intervals    int
	ViewsPerHour float64 // mean raw rate
	MeanResidual float64 // mean of log(rate) − fit
	Adjusted     float64 // exp(MeanResidual)
	residuals    []float64
}

// Result is the conclusion.
type Result struct {
	Variants []VariantStats // by variant index
	// Intercept and Exponent are a and b of the fitted curve.
	Intercept, Exponent float64
	// Winner is the best variant's index, or -1 when there is no clear
	// winner (confidence under MinConfidence, or too little data).
	Winner, RunnerUp int
	Confidence       float64
	Lift             float64 // exp(best − runner-up mean residual) − 1
	Note             string
}

// MinConfidence is the confidence a winner needs.
const MinConfidence = 0.95

// minIntervals is the fewest sample intervals each variant needs for a
// comparison.
const minIntervals = 2

// Analyse computes the result for variants 0..n-1 from the samples (any
// order), the windows and the video's publish time.
func Analyse(samples []Sample, windows []Window, published time.Time, n int) Result {
	sort.Slice(samples, func(i, j int) bool { return samples[i].At.Before(samples[j].At) })
	type interval struct {
		variant   int
		rate, age float64
	}
	var ivs []interval
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		hours := b.At.Sub(a.At).Hours()
		gained := b.Views - a.Views
		if hours <= 0 || gained <= 0 {
			continue // no growth: log undefined; a flat hour says little
		}
		mid := a.At.Add(b.At.Sub(a.At) / 2)
		v := -1
		for _, w := range windows {
			// The whole interval inside one window, so the rate belongs to
			// one variant only.
			if !a.At.Before(w.Start) && !b.At.After(w.End) {
				v = w.Variant
				break
			}
		}
		age := mid.Sub(published).Hours()
		if age <= 0 {
			age = 1.0 / 60
		}
		ivs = append(ivs, interval{variant: v, rate: gained / hours, age: age})
	}
	res := Result{Variants: make([]VariantStats, n), Winner: -1, RunnerUp: -1}
	for i := range res.Variants {
		res.Variants[i].Variant = i
	}
	if len(ivs) < 2 {
		res.Note = "too few samples to fit the video's decay curve"
		return res
	}
	xs, ys := make([]float64, len(ivs)), make([]float64, len(ivs))
	for i, iv := range ivs {
		xs[i], ys[i] = math.Log(iv.age), math.Log(iv.rate)
	}
	groups := make([]int, len(ivs))
	for i, iv := range ivs {
		groups[i] = iv.variant
	}
	res.Intercept, res.Exponent = fit(xs, ys, groups)
	for i, iv := range ivs {
		if iv.variant < 0 || iv.variant >= n {
			continue
		}
		r := ys[i] - (res.Intercept + res.Exponent*xs[i])
		vs := &res.Variants[iv.variant]
		vs.residuals = append(vs.residuals, r)
		vs.ViewsPerHour += iv.rate
		vs.Intervals++
	}
	for i := range res.Variants {
		vs := &res.Variants[i]
		if vs.Intervals > 0 {
			vs.ViewsPerHour /= float64(vs.Intervals)
			vs.MeanResidual = mean(vs.residuals)
			vs.Adjusted = math.Exp(vs.MeanResidual)
		}
	}
	order := make([]int, 0, n)
	for i := range res.Variants {
		if res.Variants[i].Intervals > 0 {
			order = append(order, i)
		}
	}
	sort.Slice(order, func(a, b int) bool {
		return res.Variants[order[a]].MeanResidual > res.Variants[order[b]].MeanResidual
	})
	if len(order) < 2 {
		res.Note = "fewer than two variants ran"
		return res
	}
	best, second := res.Variants[order[0]], res.Variants[order[1]]
	res.RunnerUp = second.Variant
	res.Lift = math.Exp(best.MeanResidual-second.MeanResidual) - 1
	if best.Intervals < minIntervals || second.Intervals < minIntervals {
		res.Note = "too few samples per variant for a confidence figure"
		return res
	}
	res.Confidence = 1 - welchP(best.residuals, second.residuals)
	if res.Confidence >= MinConfidence {
		res.Winner = best.Variant
	} else {
		res.Note = "no clear winner"
	}
	return res
}

// fit returns the slope b of y = a_g + b·x, least squares with one level
// per group (the pooled within-group slope), and a, the mean of y − b·x
// over all points: the common curve residuals are taken from. b is 0 when
// x never varies within a group.
func fit(xs, ys []float64, groups []int) (a, b float64) {
	type acc struct{ n, x, y float64 }
	means := map[int]*acc{}
	for i, g := range groups {
		m := means[g]
		if m == nil {
			m = &acc{}
			means[g] = m
		}
		m.n++
		m.x += xs[i]
		m.y += ys[i]
	}
	var sxx, sxy float64
	for i, g := range groups {
		m := means[g]
		dx := xs[i] - m.x/m.n
		sxx += dx * dx
		sxy += dx * (ys[i] - m.y/m.n)
	}
	if sxx > 0 {
		b = sxy / sxx
	}
	for i := range xs {
		a += ys[i] - b*xs[i]
	}
	return a / float64(len(xs)), b
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func variance(v []float64) float64 {
	m := mean(v)
	s := 0.0
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return s / float64(len(v)-1)
}

// welchP is the one-sided p-value of "mean(a) > mean(b)" by Welch's t
// test.
func welchP(a, b []float64) float64 {
	va, vb := variance(a)/float64(len(a)), variance(b)/float64(len(b))
	diff := mean(a) - mean(b)
	se := math.Sqrt(va + vb)
	if se == 0 {
		if diff > 0 {
			return 0
		}
		return 0.5
	}
	t := diff / se
	df := (va + vb) * (va + vb) / (va*va/float64(len(a)-1) + vb*vb/float64(len(b)-1))
	return StudentTUpper(t, df)
}

// StudentTUpper is P(T > t) for Student's t with df degrees of freedom.
func StudentTUpper(t, df float64) float64 {
	x := df / (df + t*t)
	tail := 0.5 * regIncBeta(df/2, 0.5, x)
	if t >= 0 {
		return tail
	}
	return 1 - tail
}

// regIncBeta is the regularized incomplete beta function I_x(a, b), by
// its continued fraction (Lentz's method).
func regIncBeta(a, b, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	la, _ := math.Lgamma(a + b)
	lb, _ := math.Lgamma(a)
	lc, _ := math.Lgamma(b)
	front := math.Exp(la - lb - lc + a*math.Log(x) + b*math.Log(1-x))
	if x > (a+1)/(a+b+2) {
		return 1 - regIncBeta(b, a, 1-x)
	}
	const tiny = 1e-300
	f, c, d := 1.0, 1.0, 0.0
	for i := 0; i <= 300; i++ {
		m := float64(i / 2)
		var num float64
		switch {
		case i == 0:
			num = 1
		case i%2 == 0:
			num = m * (b - m) * x / ((a + 2*m - 1) * (a + 2*m))
		default:
			num = -(a + m) * (a + b + m) * x / ((a + 2*m) * (a + 2*m + 1))
		}
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		d = 1 / d
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		cd := c * d
		f *= cd
		if math.Abs(1-cd) < 1e-12 {
			break
		}
	}
	return front * (f - 1) / a
}
