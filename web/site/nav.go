package site

import (
	"context"
	"net/http"
)

// Link is one entry of the site's navigation.
type Link struct {
	Name string
	Path string
}

type navKey struct{}

// WithNav puts the site's navigation into every request's context, where
// Layout reads it. Package web lists the products; their packages cannot
// import it (web imports them), so the list travels with the request.
func WithNav(links []Link) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), navKey{}, links)))
		})
	}
}

// navFrom returns the navigation WithNav put into ctx; none outside it.
func navFrom(ctx context.Context) []Link {
	links, _ := ctx.Value(navKey{}).([]Link)
	return links
}
