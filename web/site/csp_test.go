package site

import (
	"net/http"
	"testing"
)

func TestAllowMediaFromAddsTheStreamOriginToConnectAndMediaSources(t *testing.T) {
	for _, tc := range []struct{ policy, origin, want string }{
		{"default-src 'self'; media-src 'self' blob:; frame-ancestors 'none'", "https://cdn.example.com",
			"default-src 'self'; media-src 'self' blob: https://cdn.example.com; frame-ancestors 'none'; connect-src 'self' blob: https://cdn.example.com"},
		{"default-src 'self'; media-src 'self' blob: https://s3; connect-src 'self' https://s3", "http://live.example:8443",
			"default-src 'self'; media-src 'self' blob: https://s3 http://live.example:8443; connect-src 'self' https://s3 http://live.example:8443"},
		{"default-src 'self'; media-src 'self' https://a.example", "https://a.example",
			"default-src 'self'; media-src 'self' https://a.example; connect-src 'self' blob: https://a.example"},
		// Nothing that could add a directive or a source gets in.
		{"default-src 'self'", "https://evil.example; script-src *", "default-src 'self'"},
		{"default-src 'self'", "", "default-src 'self'"},
	} {
		h := http.Header{}
		h.Set("Content-Security-Policy", tc.policy)
		AllowMediaFrom(h, tc.origin)
		if got := h.Get("Content-Security-Policy"); got != tc.want {
			t.Errorf("AllowMediaFrom(%q, %q):\n got %q\nwant %q", tc.policy, tc.origin, got, tc.want)
		}
	}
}

func TestMediaOriginIsSchemeAndHostOfHTTPURLsOnly(t *testing.T) {
	for raw, want := range map[string]string{
		"https://CDN.example.com/live/index.m3u8?token=x": "https://cdn.example.com",
		"http://127.0.0.1:8080/demo/live/stream.m3u8":     "http://127.0.0.1:8080",
		"ftp://example.com/a.m3u8":                        "",
		"/relative/stream.m3u8":                           "",
		"https://a.example;script-src/x.m3u8":             "",
	} {
		if got := MediaOrigin(raw); got != want {
			t.Errorf("MediaOrigin(%q) = %q; want %q", raw, got, want)
		}
	}
}
