package site

import (
	"net"
	"net/http"
	"strings"
)

// APIKeyHeader is the header the APIs read a key from; Authorization:
// Bearer is accepted too.
const APIKeyHeader = "X-API-Key"

// APIKey returns the API key a request carries in APIKeyHeader or, failing
// that, as an Authorization: Bearer token; empty when it carries none.
// Callers must never log it.
func APIKey(r *http.Request) string {
	if key := r.Header.Get(APIKeyHeader); key != "" {
		return key
	}
	// Another scheme (Basic …) carries no API key; taking its value as one
	// would send a password to the key lookup.
	if key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return key
	}
	return ""
}

// ClientIP is the peer address, for per-client limits. Behind a proxy
// every client shares the proxy's address; limits then apply to it as a
// whole (limits keyed on an inbox or a user still protect each of them).
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
