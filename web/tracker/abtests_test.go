package tracker_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/abtest"
	"jetfleet/internal/blob"
	"jetfleet/internal/google/oauth"
	"jetfleet/internal/sealed"
	"jetfleet/internal/testenv"
	"jetfleet/internal/tracking"
	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
	"jetfleet/web/session"
	"jetfleet/web/tracker"
)

type abSite struct {
	url string
	g   *youtubetest.Google
}

func newABSite(t *testing.T) *abSite {
	t.Helper()
	ctx := testenv.Context(t, 60*time.Second)
	_, js := testenv.JetStream(t)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	yt := youtubetest.New(youtubetest.Options{})
	yt.AddChannel(chanA, "@alphas", "Alpha Channel")
	yt.AddVideo(chanA, "alphavideo1", "Alpha video", time.Now().Add(-time.Hour), 500)
	g := youtubetest.NewGoogle(yt, youtubetest.GoogleConfig{ClientID: "cid", ClientSecret: "cs", Channel: chanA})
	gsrv := httptest.NewServer(g.Handler())
	t.Cleanup(gsrv.Close)

	mux := http.NewServeMux()
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	kv, _ := js.KeyValue(ctx, subjects.SessionsBucket)
	sessions, _ := session.New(kv, session.Config{Secret: []byte(strings.Repeat("k", 32)), TTL: time.Hour}, quiet)
	store, _ := tracking.Open(ctx, js, tracking.Options{})
	signer, _ := blob.NewURLSigner([]byte(strings.Repeat("s", 32)))
	blobs, _ := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, srv.URL)
	box, _ := sealed.New([]byte(strings.Repeat("t", 32)))
	oc, _ := oauth.New(oauth.Config{ClientID: "cid", ClientSecret: "cs", AuthBase: gsrv.URL, TokenBase: gsrv.URL, RedirectURL: srv.URL + "/tracker/youtube/callback"})
	svc, err := abtest.Open(ctx, js, abtest.Config{OAuth: oc, APIBase: gsrv.URL, Tokens: box, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tracker.New(tracker.Deps{JS: js, Store: store, Blobs: blobs, ABTests: svc, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h.Routes(mux, sessions.Gate(func(context.Context, string) error { return nil }))
	mux.HandleFunc("GET /test/signin", func(w http.ResponseWriter, r *http.Request) {
		u := r.URL.Query().Get("user")
		sessions.SignIn(r.Context(), w, r, u, u+"@example.com")
	})
	mux.HandleFunc("GET /test/csrf", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, session.From(r.Context()).CSRFToken())
	})
	srv.Config.Handler = sessions.Middleware(mux)
	return &abSite{url: srv.URL, g: g}
}

// browser is one signed-in browser (its own cookies) that does not follow
// redirects.
type abBrowser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func (s *abSite) browser(t *testing.T, user string) *abBrowser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	b := &abBrowser{t: t, c: c, base: s.url}
	b.get("/test/signin?user=" + user)
	return b
}

func (b *abBrowser) get(path string) (int, string, string) {
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

func (b *abBrowser) post(path string, form url.Values) (int, string, string) {
	_, csrf, _ := b.get("/test/csrf")
	form.Set("csrf_token", csrf)
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("Location")
}

func TestOAuthCallbackFromAnotherBrowserIsRefusedWithAMessage(t *testing.T) {
	s := newABSite(t)
	mine, other, stranger := s.browser(t, "u1"), s.browser(t, "u1"), s.browser(t, "u2")
	status, _, consent := mine.post("/tracker/youtube/connect", url.Values{})
	if status != http.StatusSeeOther || !strings.Contains(consent, "code_challenge_method=S256") {
		t.Fatalf("connect: %d to %q", status, consent)
	}
	callback, err := s.g.Consent(consent)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := url.Parse(callback)
	// Same account, another browser session: a link someone sent.
	status, body, _ := other.get(cb.RequestURI())
	if status != http.StatusBadRequest || !strings.Contains(body, "another browser session") {
		t.Fatalf("callback in another session: %d\n%s", status, body)
	}
	if status, body, _ = mine.get("/tracker/youtube/callback?error=access_denied&state=x"); status != http.StatusBadRequest || !strings.Contains(body, "access_denied") {
		t.Fatalf("consent refused: %d\n%s", status, body)
	}
	// The state was spent by the first attempt; a fresh consent works.
	_, _, consent = mine.post("/tracker/youtube/connect", url.Values{})
	callback, _ = s.g.Consent(consent)
	cb, _ = url.Parse(callback)
	if status, _, loc := mine.get(cb.RequestURI()); status != http.StatusSeeOther || loc != "/tracker/abtests?ok=connected" {
		t.Fatalf("callback: %d to %q", status, loc)
	}
	if _, body, _ = mine.get("/tracker/abtests"); !strings.Contains(body, "Connected: <b>Alpha Channel</b>") {
		t.Fatalf("list page after connecting:\n%s", body)
	}
	status, body, _ = mine.post("/tracker/abtests", url.Values{"video": {"https://youtu.be/alphavideo1"}, "variants": {"2"},
		"title0": {strings.Repeat("t", 101)}, "title1": {"ok"}, "days": {"20"}, "rotation": {"12h0m0s"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "at most 100 characters; this one has 101") || !strings.Contains(body, "a test runs 1 to 14 days") {
		t.Fatalf("bad form: %d\n%s", status, body)
	}
	status, _, page := mine.post("/tracker/abtests", url.Values{"video": {"alphavideo1"}, "variants": {"2"}, "days": {"3"}, "rotation": {"12h0m0s"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(page, "/tracker/abtests/") {
		t.Fatalf("create: %d to %q", status, page)
	}
	if status, body, _ = mine.get(page); status != http.StatusOK || !strings.Contains(body, "data-upload=") {
		t.Fatalf("draft page: %d (no upload fields)\n%s", status, body)
	}
	if status, _, _ = stranger.get(page); status != http.StatusNotFound {
		t.Fatalf("another user's test: %d, want 404", status)
	}
	if status, _, _ = stranger.post(page+"/delete", url.Values{}); status != http.StatusNotFound {
		t.Fatalf("another user deleting the test: %d, want 404", status)
	}
}
