package counter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics/counterdb"
	"jetfleet/internal/apikeys"
	"jetfleet/subjects"
	"jetfleet/web/chart"
	"jetfleet/web/ratelimit"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

// Page serves /counter: a tenant's top videos, its events/s over the last
// 30 minutes and copy-paste curl examples, plus a form to create an API key.
//
// The page is for signed-in people (the site's sign-in gate) and shows only
// the tenants the signed-in user created.
type Page struct {
	keys *apikeys.Store
	// creations limits key creation per user, counted across edges.
	creations *ratelimit.Shared
	ch        driver.Conn
	fresh     *Freshness
	log       *slog.Logger
	pages     site.Pages
}

// Key creations a user may make per hour, on all edges together.
const creationsPerHour = 10

// NewPage wires the page.
func NewPage(js jetstream.JetStream, keys *apikeys.Store, ch driver.Conn, fresh *Freshness, log *slog.Logger) (*Page, error) {
	creations, err := ratelimit.NewShared(js, "counter-keys", creationsPerHour, time.Hour)
	if err != nil {
		return nil, err
	}
	return &Page{keys: keys, creations: creations, ch: ch, fresh: fresh, log: log, pages: site.Pages{Log: log}}, nil
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
	Bars     []chart.Bar
	PerSec   float64
	Fresh    string
	Base     string
	NewKey   string
	Problem  string
	Sample   string
	Interval string
}

// A tenant belongs to the user who created it (apikeys.TenantOf), so a
// user's page lists, and reads the figures of, only their own tenants. API
// requests carry only the key, whose record holds the full id.
func ownedTenant(user, name string) string { return apikeys.TenantOf(user, name) }

// signedIn is the user the sign-in gate let through: Routes puts every
// handler behind it, so there is always one.
func signedIn(r *http.Request) string {
	u, _ := session.UserFrom(r.Context())
	return u.ID
}

func (p *Page) show(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, signedIn(r), r.URL.Query().Get("tenant"), "", "")
}

func (p *Page) createKey(w http.ResponseWriter, r *http.Request) {
	user := signedIn(r)
	tenant := strings.TrimSpace(r.PostFormValue("tenant"))
	name := strings.TrimSpace(r.PostFormValue("name"))
	problem := ""
	if err := apikeys.ValidName("Tenant", tenant, false); err != nil {
		problem = err.Error() + ". Give a short name such as acme-prod."
	} else if strings.ContainsAny(tenant, ". \t") {
		problem = "Tenant: give a name without spaces or dots, e.g. acme-prod."
	} else if err := apikeys.ValidName("Key name", name, true); err != nil {
		problem = err.Error() + "."
	}
	if problem != "" {
		p.render(w, r, http.StatusBadRequest, user, "", "", problem)
		return
	}
	ok, err := p.creations.Allow(r.Context(), user)
	if err != nil {
		p.log.Warn("count counter key creation", "err", err)
		p.render(w, r, http.StatusServiceUnavailable, user, "", "", "Keys cannot be created right now; try again in a minute.")
		return
	}
	if !ok {
		p.render(w, r, http.StatusTooManyRequests, user, "", "", fmt.Sprintf("You have created %d keys within the hour, the most allowed; try again later.", creationsPerHour))
		return
	}
	key, _, err := p.keys.Issue(r.Context(), apikeys.NewKey{Owner: user, Tenant: ownedTenant(user, tenant), Name: name})
	if errors.Is(err, apikeys.ErrTooManyKeys) {
		p.render(w, r, http.StatusConflict, user, "", "", "You already have "+strconv.Itoa(apikeys.MaxKeysPerUser)+" API keys, the most one account may hold.")
		return
	}
	if err != nil {
		p.log.Warn("create counter key", "err", err)
		p.render(w, r, http.StatusServiceUnavailable, user, "", "", "The key could not be created; try again shortly.")
		return
	}
	p.render(w, r, http.StatusOK, user, tenant, key, "")
}

func (p *Page) render(w http.ResponseWriter, r *http.Request, status int, user, tenant, newKey, problem string) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	d := pageData{Tenant: tenant, NewKey: newKey, Problem: problem,
		Base: "http://" + r.Host, Sample: "demo-video-1"}
	// One filtered listing of this user's index: other users' keys are
	// never read.
	owned, err := p.keys.Owned(ctx, user)
	if err != nil {
		p.log.Warn("list counter tenants", "err", err)
	}
	var tenants []string
	for _, k := range owned {
		tenants = append(tenants, k.Tenant)
	}
	slices.Sort(tenants)
	tenants = slices.Compact(tenants)
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
	p.pages.Render(w, r, status, "Counter API", pageBody(d))
}

// bars are events/s per minute for the 30 minutes before now (the
// current, incomplete minute left out), labelled with the minute.
func bars(points []counterdb.Point, now time.Time) ([]chart.Bar, float64) {
	const n = 30
	end := now.Truncate(time.Minute)
	perMin := make([]float64, n)
	for _, pt := range points {
		i := n - 1 - int(end.Sub(pt.Start)/time.Minute) + 1
		if i >= 0 && i < n && pt.Start.Before(end) {
			perMin[i] = float64(pt.Events) / 60
		}
	}
	out := make([]chart.Bar, n)
	for i, v := range perMin {
		out[i] = chart.Bar{Label: end.Add(time.Duration(i-n) * time.Minute).Format("15:04"), Value: math.Round(v*10) / 10}
	}
	return out, perMin[n-1]
}
