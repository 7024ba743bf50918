package counter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/a-h/templ"

	"jetfleet/analytics/counterdb"
	"jetfleet/internal/counterkeys"
	"jetfleet/subjects"
	"jetfleet/web/session"
)

// Page serves /counter: a tenant's top videos, its events/s over the last
// 30 minutes and copy-paste curl examples, plus a form to create an API key.
//
// The page is for signed-in people (the site's sign-in gate) and shows only
// the tenants the signed-in user created.
type Page struct {
	keys  *counterkeys.Store
	ch    driver.Conn
	fresh *Freshness
	log   *slog.Logger
	wrap  func(templ.Component) templ.Component // the site layout
}

// NewPage wires the page; wrap puts a body into the site layout.
func NewPage(keys *counterkeys.Store, ch driver.Conn, fresh *Freshness, log *slog.Logger, wrap func(templ.Component) templ.Component) *Page {
	return &Page{keys: keys, ch: ch, fresh: fresh, log: log, wrap: wrap}
}

// Routes registers the page and its form on mux (behind sessions and CSRF),
// each behind protect, the site's sign-in gate.
func (p *Page) Routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	mux.Handle("GET /counter", protect(http.HandlerFunc(p.show)))
	mux.Handle("POST /counter/keys", protect(http.HandlerFunc(p.createKey)))
}

type pageData struct {
	Tenants  []string
	Tenant   string
	Top      []counterdb.VideoTotal
	Bars     []bar
	PerSec   float64
	Fresh    string
	Base     string
	NewKey   string
	Problem  string
	Sample   string
	Interval string
}

type bar struct {
	X, Y, W, H int
	Label      string
}

// A tenant belongs to the user who created it (counterkeys.TenantOf), so a
// user's page lists, and reads the figures of, only their own tenants. API
// requests carry only the key, whose record holds the full id.
func ownedTenant(user, name string) string { return counterkeys.TenantOf(user, name) }

// signedIn returns the user the sign-in gate let through.
func signedIn(w http.ResponseWriter, r *http.Request) (string, bool) {
	u, ok := session.UserFrom(r.Context())
	if !ok {
		http.Error(w, "Sign in first.", http.StatusUnauthorized)
	}
	return u.ID, ok
}

func (p *Page) show(w http.ResponseWriter, r *http.Request) {
	user, ok := signedIn(w, r)
	if !ok {
		return
	}
	p.render(w, r, user, r.URL.Query().Get("tenant"), "", "")
}

func (p *Page) createKey(w http.ResponseWriter, r *http.Request) {
	user, ok := signedIn(w, r)
	if !ok {
		return
	}
	tenant := strings.TrimSpace(r.PostFormValue("tenant"))
	if tenant == "" || strings.ContainsAny(tenant, ". \t") {
		w.WriteHeader(http.StatusBadRequest)
		p.render(w, r, user, "", "", "Tenant: give a name without spaces or dots, e.g. acme-prod.")
		return
	}
	key, _, err := p.keys.Create(r.Context(), ownedTenant(user, tenant), r.PostFormValue("name"), 0)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		p.render(w, r, user, "", "", err.Error())
		return
	}
	p.render(w, r, user, tenant, key, "")
}

func (p *Page) render(w http.ResponseWriter, r *http.Request, user, tenant, newKey, problem string) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	d := pageData{Tenant: tenant, NewKey: newKey, Problem: problem,
		Base: "http://" + r.Host, Sample: "demo-video-1"}
	all, err := p.keys.Tenants(ctx)
	if err != nil {
		p.log.Warn("list counter tenants", "err", err)
	}
	var tenants []string
	for _, t := range all {
		if name, mine := strings.CutPrefix(t, ownedTenant(user, "")); mine {
			tenants = append(tenants, name)
		}
	}
	slices.Sort(tenants)
	d.Tenants = tenants
	if d.Tenant != "" && slices.Contains(tenants, d.Tenant) && p.ch != nil {
		tenant := ownedTenant(user, d.Tenant)
		now := time.Now().UTC()
		if d.Top, err = counterdb.TopVideos(ctx, p.ch, tenant, subjects.CounterView, now.Add(-7*24*time.Hour), 10); err != nil {
			p.log.Warn("counter top videos", "err", err)
		}
		if len(d.Top) > 0 {
			d.Sample = d.Top[0].VideoID
		}
		rate, err := counterdb.TenantRate(ctx, p.ch, tenant, now.Add(-30*time.Minute))
		if err != nil {
			p.log.Warn("counter tenant rate", "err", err)
		}
		d.Bars, d.PerSec = bars(rate, now)
	} else if d.Tenant != "" && !slices.Contains(tenants, d.Tenant) {
		d.Problem = fmt.Sprintf("you have no API key for tenant %q", d.Tenant)
		d.Tenant = ""
	}
	if f, ok := p.fresh.All(); ok {
		d.Fresh = f.UTC().Format("15:04:05")
	}
	d.Interval = time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	p.wrap(pageBody(d)).Render(r.Context(), w)
}

// bars draws events/s per minute for the 30 minutes before now (the current,
// incomplete minute left out) as a 600×120 SVG bar chart.
func bars(points []counterdb.Point, now time.Time) ([]bar, float64) {
	const n, width, height = 30, 600, 120
	end := now.Truncate(time.Minute)
	perMin := make([]float64, n)
	for _, pt := range points {
		i := n - 1 - int(end.Sub(pt.Start)/time.Minute) + 1
		if i >= 0 && i < n && pt.Start.Before(end) {
			perMin[i] = float64(pt.Events) / 60
		}
	}
	peak := slices.Max(perMin)
	out := make([]bar, n)
	for i, v := range perMin {
		h := 0
		if peak > 0 {
			h = int(v / peak * (height - 10))
		}
		out[i] = bar{X: i * width / n, W: width/n - 2, Y: height - h, H: h,
			Label: fmt.Sprintf("%s: %.0f events/s", end.Add(time.Duration(i-n)*time.Minute).Format("15:04"), v)}
	}
	return out, perMin[n-1]
}
