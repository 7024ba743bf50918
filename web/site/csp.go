package site

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// cspOrigin is what AllowMediaFrom accepts as an origin: a scheme and a
// host (with port), nothing that could end a directive or add a source.
var cspOrigin = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$`)

// MediaOrigin returns the origin (scheme://host[:port]) of an http(s) URL,
// or "" when it has none a Content-Security-Policy could name.
func MediaOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	o := strings.ToLower(u.Scheme + "://" + u.Host)
	if !cspOrigin.MatchString(o) {
		return ""
	}
	return o
}

// AllowMediaFrom widens the response's Content-Security-Policy (set by the
// edge's middleware before the handler runs) so that the page may play
// media from origin: hls.js fetches playlists and segments with XHR
// (connect-src) and the browser's own HLS player loads them as media
// (media-src). Only the page that plays the stream gets the wider policy.
// An origin MediaOrigin would not return is ignored.
func AllowMediaFrom(h http.Header, origin string) {
	if origin == "" || !cspOrigin.MatchString(origin) {
		return
	}
	policy := h.Get("Content-Security-Policy")
	if policy == "" {
		return // no policy: nothing is restricted
	}
	parts := strings.Split(policy, ";")
	seen := map[string]bool{}
	for i, p := range parts {
		fields := strings.Fields(p)
		if len(fields) == 0 {
			continue
		}
		switch name := fields[0]; name {
		case "connect-src", "media-src":
			seen[name] = true
			if !containsField(fields[1:], origin) {
				fields = append(fields, origin)
			}
			parts[i] = " " + strings.Join(fields, " ")
		}
	}
	for _, name := range []string{"connect-src", "media-src"} {
		if !seen[name] {
			parts = append(parts, " "+name+" 'self' blob: "+origin)
		}
	}
	h.Set("Content-Security-Policy", strings.TrimSpace(strings.Join(parts, ";")))
}

func containsField(fields []string, s string) bool {
	for _, f := range fields {
		if f == s {
			return true
		}
	}
	return false
}
