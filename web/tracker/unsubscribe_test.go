package tracker_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"jetfleet/internal/tracking"
)

// A mail program's one-click unsubscribe (RFC 8058) is a POST of
// List-Unsubscribe=One-Click to the header's URL, without a session or a
// CSRF token: it turns the digest off. A GET of it never does (mail
// scanners fetch links): it leads to a page asking to confirm.
func TestOneClickUnsubscribeTurnsTheDigestOffWithoutSignInButAGetOnlyAsks(t *testing.T) {
	s := newSite(t)
	token := tracking.UnsubscribeToken(s.tokens, "alice")
	nobody := s.as("")

	code, _, h := nobody.get("/api/tracker/unsubscribe/" + token)
	if code != http.StatusSeeOther || h.Get("Location") != "/tracker/unsubscribe/"+token {
		t.Fatalf("GET of the one-click URL = %d → %q, want 303 to the confirm page", code, h.Get("Location"))
	}
	code, body, _ := nobody.get("/tracker/unsubscribe/" + token)
	if code != http.StatusOK || !strings.Contains(body, "Stop the weekly mail") || !strings.Contains(body, `<form method="post" action="/tracker/unsubscribe/`+token) {
		t.Fatalf("confirm page = %d:\n%s", code, body)
	}
	if off, _ := s.store.DigestOff(s.ctx, "alice"); off {
		t.Fatal("fetching the links turned the digest off")
	}

	resp, err := http.Post(s.url+"/api/tracker/unsubscribe/"+token, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("one-click POST = %d, want 200", resp.StatusCode)
	}
	if off, _ := s.store.DigestOff(s.ctx, "alice"); !off {
		t.Fatal("one-click POST did not turn the digest off")
	}
	if off, _ := s.store.DigestOff(s.ctx, "bob"); off {
		t.Fatal("alice's link turned bob's digest off")
	}
}

// The confirm page's button unsubscribes (through the site's CSRF check);
// a token that is not ours, or an altered one, changes nothing and says so.
func TestUnsubscribePageConfirmsAndRefusesForgedTokens(t *testing.T) {
	s := newSite(t)
	token := tracking.UnsubscribeToken(s.tokens, "bob")
	b := s.as("")
	code, body, _ := b.post("/tracker/unsubscribe/"+token, url.Values{})
	if code != http.StatusOK || !strings.Contains(body, "Unsubscribed") {
		t.Fatalf("confirm = %d:\n%s", code, body)
	}
	if off, _ := s.store.DigestOff(s.ctx, "bob"); !off {
		t.Fatal("confirming did not turn the digest off")
	}

	forged := token[:len(token)-2] + "AA"
	for _, tok := range []string{forged, "bob", strings.Repeat("x", 300)} {
		if code, body, _ := b.get("/tracker/unsubscribe/" + tok); code != http.StatusNotFound || !strings.Contains(body, "not valid") {
			t.Errorf("confirm page of token %q = %d", tok, code)
		}
		resp, err := http.Post(s.url+"/api/tracker/unsubscribe/"+tok, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("one-click POST with token %q = %d, want 404", tok, resp.StatusCode)
		}
	}
	alice := tracking.UnsubscribeToken(s.tokens, "alice")
	resp, _ := http.Post(s.url+"/api/tracker/unsubscribe/"+alice, "application/x-www-form-urlencoded", strings.NewReader("hello=1"))
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST without List-Unsubscribe=One-Click = %d, want 400", resp.StatusCode)
	}
	if off, _ := s.store.DigestOff(s.ctx, "alice"); off {
		t.Error("a refused request turned alice's digest off")
	}
}
