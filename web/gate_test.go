package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/testenv"
	"jetfleet/web/session"
	"jetfleet/web/webtest"
)

// TestEveryProductsSignedInPagesRefuseASessionWhoseAccountWasDeleted signs
// in, deletes the account behind the session (as a GDPR deletion does,
// before or without its purge of sessions), and presents the old cookie to
// every signed-in page of every product: each sends the visitor to sign in.
func TestEveryProductsSignedInPagesRefuseASessionWhoseAccountWasDeleted(t *testing.T) {
	e := startEdge(t)
	ctx := testenv.Context(t, 30*time.Second)
	b := webtest.NewBrowser(t, e.URL)
	b.SignIn(e.js, "pat@example.com")
	base, _ := url.Parse(e.URL)
	var cookie *http.Cookie
	for _, c := range b.HTTP.Jar.Cookies(base) {
		if c.Name == session.CookieName {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie after signing in")
	}
	_, page := b.Get("/account/data")
	token := csrfInput.FindStringSubmatch(page)
	if token == nil {
		t.Fatalf("no CSRF token on /account/data: %s", page)
	}

	// Every route a signed-in person uses, product by product.
	const id, rid = "0123456789abcdef01234567", "76543210fedcba9876543210"
	pages := []struct{ method, path string }{
		{"GET", "/tracker"},
		{"POST", "/tracker/track"},
		{"POST", "/tracker/untrack"},
		{"GET", "/tracker/videos/dQw4w9WgXcQ"},
		{"GET", "/tracker/channels/UC0123456789abcdefghijkl"},
		{"GET", "/events/mine"},
		{"GET", "/events/e/" + id + "/r/" + rid},
		{"POST", "/events/e/" + id + "/r/" + rid + "/confirm"},
		{"POST", "/events/e/" + id + "/r/" + rid + "/cancel"},
		{"GET", "/events/organise"},
		{"GET", "/events/organise/new"},
		{"POST", "/events/organise/new"},
		{"GET", "/events/organise/" + id},
		{"POST", "/events/organise/" + id + "/edit"},
		{"POST", "/events/organise/" + id + "/tickets"},
		{"POST", "/events/organise/" + id + "/tickets/t1/delete"},
		{"POST", "/events/organise/" + id + "/publish"},
		{"POST", "/events/stripe/connect"},
		{"GET", "/events/stripe/return"},
		{"GET", "/events/stripe/refresh"},
		{"GET", "/counter"},
		{"POST", "/counter/keys"},
		{"GET", "/enricher"},
		{"GET", "/account/data"},
		{"POST", "/account/data/request"},
		{"GET", "/account/data/confirm/" + id},
		{"POST", "/account/data/confirm/" + id},
	}
	send := func(method, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, e.URL+path, strings.NewReader(""))
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		req.Header.Set(session.HeaderName, token[1])
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := b.HTTP.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp
	}
	toSignIn := func(r *http.Response) bool {
		return r.StatusCode == http.StatusSeeOther && strings.HasPrefix(r.Header.Get("Location"), "/signin?next=")
	}
	// While the account exists, the session opens the pages.
	for _, p := range pages {
		if p.method == "GET" && toSignIn(send(p.method, p.path)) {
			t.Errorf("%s %s sends a signed-in person to sign in", p.method, p.path)
		}
	}

	users, err := accounts.Open(ctx, e.js, accounts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pat, err := users.UserByEmail(ctx, "pat@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := users.Delete(ctx, pat.ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if r := send(p.method, p.path); !toSignIn(r) {
			t.Errorf("deleted account: %s %s = %d %q, want a redirect to sign in", p.method, p.path, r.StatusCode, r.Header.Get("Location"))
		}
	}
}
