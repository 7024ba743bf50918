package counter_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/web/webtest"
	"jetfleet/workers/counter"
)

func TestPageCreatesAKeyOnceAndShowsTheTenantsFigures(t *testing.T) {
	e := newEnv(t)
	e.worker(counter.Config{})
	visitor := webtest.NewBrowser(t, e.srv.URL)
	if code, _ := visitor.Get("/counter"); code != http.StatusSeeOther {
		t.Fatalf("anonymous visitor sees the counter page: %d", code)
	}
	visitor.SignIn(e.js, "ada@example.com")
	browser := visitor.HTTP
	page := func(path string) string {
		resp, err := browser.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return string(b)
	}
	body := page("/counter")
	if !strings.Contains(body, "/api/counter/v1/batch") {
		t.Error("the page has no curl examples")
	}
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token in the key form")
	}
	resp, err := browser.PostForm(e.srv.URL+"/counter/keys", url.Values{"csrf_token": {m[1]}, "tenant": {"acme"}})
	if err != nil {
		t.Fatal(err)
	}
	created, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	key := regexp.MustCompile(`jfc_[A-Za-z0-9_-]+`).FindString(string(created))
	if resp.StatusCode != http.StatusOK || key == "" {
		t.Fatalf("create key: %d, key %q", resp.StatusCode, key)
	}
	if status, _ := e.post(key, "/api/counter/v1/events", `{"video_id":"clip-1"}`); status != http.StatusAccepted {
		t.Fatalf("the new key does not work: %d", status)
	}
	testenv.Eventually(t, 15*time.Second, "the page lists clip-1 among the top videos", func() bool {
		return strings.Contains(page("/counter?tenant=acme"), "clip-1")
	})
	if strings.Contains(page("/counter?tenant=acme"), key) {
		t.Error("the key is shown again after creation")
	}
	if !strings.Contains(page("/counter?tenant=acme"), "<svg") {
		t.Error("no events/s chart")
	}
	if body := page("/counter?tenant=nobody"); !strings.Contains(body, "you have no API key") {
		t.Error("an unknown tenant is not refused")
	}

	// Another user neither lists acme nor reads its figures.
	other := webtest.NewBrowser(t, e.srv.URL)
	other.SignIn(e.js, "eve@example.com")
	if _, body := other.Get("/counter?tenant=acme"); strings.Contains(body, "clip-1") || !strings.Contains(body, "you have no API key") {
		t.Error("another user sees acme's figures")
	}
}
