package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"jetfleet/web/site"
)

// product is one entry of the home page and the navigation.
type product struct {
	Name string
	Path string
	// Summary says what works today; Coming lists what the product will
	// do but does not yet, so the home page never advertises it as built.
	Summary string
	Coming  []string
	// Mount registers the product's pages and API on mux; nil renders a
	// "coming" placeholder at Path.
	Mount func(ctx context.Context, s *Server, mux *http.ServeMux) error
}

// Ready reports whether the product has pages yet.
func (p product) Ready() bool { return p.Mount != nil }

// allProducts lists what the site offers. A product's Mount lives in
// mount_<product>.go.
func allProducts() []product {
	return []product{
		{Name: "Tracker", Path: "/tracker", Mount: mountTracker, Summary: "Track YouTube channels and videos: view curves with thumbnail and title changes marked, weekly outliers against each channel's expected views, mailed as one digest.",
			Coming: []string{"thumbnail and title A/B tests"}},
		{Name: "Events", Path: "/events", Mount: mountEvents, Summary: "Virtual community events and hackathons: free and paid tickets through Stripe, registration by magic link, your data on request.",
			Coming: []string{"live stream", "main and team chat", "teams", "engagement analytics", "fees", "exports"}},
		{Name: "Counter API", Path: "/counter", Mount: mountCounter, Summary: "Count VIEW, LIKE and SHARE per video at 100K events/s and read COUNT, SUM, AVG over any range in milliseconds."},
		{Name: "Enricher", Path: "/enricher", Mount: mountEnricher, Summary: "User, subscription and lesson events in; every event out, lessons enriched with subscription and country."},
		{Name: "Media", Path: "/media", Mount: mountMedia, Summary: "Upload a video; queue-driven workers fan out one job per rendition (480p, 720p, 1080p) into HLS, with progress, retries and playback."},
	}
}

func (s *Server) mountProducts(ctx context.Context, mux *http.ServeMux) error {
	for _, p := range allProducts() {
		if !p.Ready() {
			mux.HandleFunc("GET "+p.Path, func(w http.ResponseWriter, r *http.Request) {
				s.pages.Render(w, r, http.StatusOK, p.Name, comingSoon(p))
			})
			continue
		}
		if err := p.Mount(ctx, s, mux); err != nil {
			return fmt.Errorf("mount %s: %w", p.Name, err)
		}
	}
	return nil
}

// navigation is the header's list of products, which the layout shows on
// every page.
func navigation() []site.Link {
	var links []site.Link
	for _, p := range allProducts() {
		links = append(links, site.Link{Name: p.Name, Path: p.Path})
	}
	return links
}

// joinList writes "a, b and c".
func joinList(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
