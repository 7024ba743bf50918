package enricher

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/analytics"
	"jetfleet/internal/apikeys"
	"jetfleet/web/chart"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

// PageDeps are what the page uses.
type PageDeps struct {
	ClickHouse driver.Conn // nil when ClickHouse is not configured
	// Rates samples the streams; only operators see them, as they count
	// every producer's events.
	Rates *Rates
	// Keys tells which ingest API keys belong to the signed-in account.
	Keys *apikeys.Store
	// Operator tells whether an account sees every producer's figures.
	Operator func(ctx context.Context, uid string) (bool, error)
	Log      *slog.Logger
}

// Page serves GET /enricher: to an operator, every lesson and the live
// stream rates; to anyone else, only the lessons sent with their own API
// keys.
type Page struct {
	d     PageDeps
	pages site.Pages
	now   func() time.Time
}

// NewPage wires the page.
func NewPage(d PageDeps) *Page {
	return &Page{d: d, pages: site.Pages{Log: d.Log}, now: time.Now}
}

// Routes registers the page on mux; protect wraps it in the sign-in check.
func (p *Page) Routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	mux.Handle("GET /enricher", protect(http.HandlerFunc(p.show)))
}

// span is one choice of the time range.
type span struct {
	Key   string
	Label string
	Range time.Duration
	Step  time.Duration
	Fmt   string
}

var spans = []span{
	{"1h", "last hour, 5-minute buckets", time.Hour, 5 * time.Minute, "15:04"},
	{"24h", "last 24 hours, hourly", 24 * time.Hour, time.Hour, "Jan 2 15h"},
	{"7d", "last 7 days, daily", 7 * 24 * time.Hour, 24 * time.Hour, "Jan 2"},
}

// maxRows bounds the combinations shown; the rest are summed in "other".
const maxRows = 25

type pageData struct {
	Operator bool
	Email    string   // of the signed-in account, for the how-to-get-a-key line
	Keys     []string // names of the account's API keys (not an operator's)
	NoKey    bool     // not an operator and no key: nothing to show
	Span     span
	Spans    []span
	Rates    RateView
	Buckets  []string // column labels
	Rows     []row
	Totals   []uint64 // per bucket
	Bars     []chart.Bar
	Problem  string
}

type row struct {
	Language, Type, Country string
	Counts                  []uint64
	Total                   uint64
}

func (p *Page) show(w http.ResponseWriter, r *http.Request) {
	sp := spans[1]
	for _, s := range spans {
		if s.Key == r.URL.Query().Get("range") {
			sp = s
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	u, _ := session.UserFrom(ctx)
	d := pageData{Span: sp, Spans: spans, Email: u.Email}
	op, err := p.d.Operator(ctx, u.ID)
	if err != nil {
		p.d.Log.Error("enricher page: operator role", "err", err)
		http.Error(w, "We could not check your account just now; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	scope := analytics.LessonScope{All: op, Owner: u.ID}
	if d.Operator = op; op {
		d.Rates = p.d.Rates.View()
	} else {
		keys, err := p.d.Keys.OwnedBy(ctx, u.ID)
		if err != nil {
			p.d.Log.Error("enricher page: the account's keys", "err", err)
			http.Error(w, "We could not read your API keys just now; try again in a moment.", http.StatusServiceUnavailable)
			return
		}
		for _, k := range keys {
			name := k.Name
			if k.Disabled {
				name += " (disabled)"
			}
			d.Keys = append(d.Keys, name)
		}
		d.NoKey = len(keys) == 0
	}
	switch {
	case d.NoKey:
	case p.d.ClickHouse == nil:
		d.Problem = "ClickHouse is not configured (CLICKHOUSE_URL), so lesson completions cannot be shown."
	default:
		end := p.now().UTC().Truncate(sp.Step).Add(sp.Step)
		start := end.Add(-sp.Range)
		counts, err := analytics.EnricherLessonCounts(ctx, p.d.ClickHouse, scope, start, end, sp.Step, 100000)
		if err != nil {
			p.d.Log.Warn("enricher lesson counts", "err", err)
			d.Problem = "Lesson completions are unavailable right now; try again shortly."
		}
		pivot(&d, counts, start, end, sp)
	}
	p.pages.Render(w, r, http.StatusOK, "Enricher", pageBody(d))
}

// pivot turns counts into rows of (language, type, country) × buckets, the
// busiest combinations first.
func pivot(d *pageData, counts []analytics.LessonCount, start, end time.Time, sp span) {
	n := int(end.Sub(start) / sp.Step)
	for i := range n {
		d.Buckets = append(d.Buckets, start.Add(time.Duration(i)*sp.Step).Format(sp.Fmt))
	}
	d.Totals = make([]uint64, n)
	byKey := map[[3]string]*row{}
	for _, c := range counts {
		i := int(c.Bucket.Sub(start) / sp.Step)
		if i < 0 || i >= n {
			continue
		}
		k := [3]string{orUnknown(c.Language), orUnknown(c.SubscriptionType), orUnknown(c.Country)}
		rw := byKey[k]
		if rw == nil {
			rw = &row{Language: k[0], Type: k[1], Country: k[2], Counts: make([]uint64, n)}
			byKey[k] = rw
		}
		rw.Counts[i] += c.Lessons
		rw.Total += c.Lessons
		d.Totals[i] += c.Lessons
	}
	for _, rw := range byKey {
		d.Rows = append(d.Rows, *rw)
	}
	slices.SortFunc(d.Rows, func(a, b row) int {
		if a.Total != b.Total {
			return int(b.Total) - int(a.Total)
		}
		return strings.Compare(a.Language+a.Type+a.Country, b.Language+b.Type+b.Country)
	})
	if len(d.Rows) > maxRows {
		other := row{Language: "other", Type: "", Country: "", Counts: make([]uint64, n)}
		for _, rw := range d.Rows[maxRows:] {
			for i, c := range rw.Counts {
				other.Counts[i] += c
			}
			other.Total += rw.Total
		}
		d.Rows = append(d.Rows[:maxRows], other)
	}
	d.Bars = bars(d.Totals, d.Buckets)
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// bars are the lessons per bucket, labelled with the bucket.
func bars(totals []uint64, labels []string) []chart.Bar {
	if len(totals) == 0 {
		return nil
	}
	out := make([]chart.Bar, len(totals))
	for i, v := range totals {
		out[i] = chart.Bar{Label: labels[i], Value: float64(v)}
	}
	return out
}
