package session_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web/session"
)

// newSite serves a tiny site on a real server: GET / shows the CSRF token and
// who is signed in, POST /in signs in as the posted user, POST /out signs
// out, POST /echo is any protected form.
func newSite(t *testing.T) (*httptest.Server, jetstream.KeyValue, jetstream.JetStream) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, subjects.SessionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.New(kv, session.Config{Secret: []byte(strings.Repeat("k", 32)), TTL: time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s := session.From(r.Context())
		io.WriteString(w, s.CSRFToken()+" "+s.UserID)
	})
	mux.HandleFunc("POST /in", func(w http.ResponseWriter, r *http.Request) {
		if _, err := m.SignIn(r.Context(), w, r, r.PostFormValue("user"), r.PostFormValue("user")+"@example.com"); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /out", func(w http.ResponseWriter, r *http.Request) {
		if err := m.SignOut(r.Context(), w, r); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := httptest.NewServer(m.Middleware(mux))
	t.Cleanup(srv.Close)
	return srv, kv, js
}

type browser struct {
	t   *testing.T
	c   *http.Client
	url string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar}, url: base}
}

func (b *browser) home() (token, user string) {
	b.t.Helper()
	resp, err := b.c.Get(b.url + "/")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	token, user, _ = strings.Cut(string(body), " ")
	return token, user
}

func (b *browser) post(path string, form url.Values, header http.Header) *http.Response {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestCookieIsHttpOnlyAndSameSite(t *testing.T) {
	srv, _, _ := newSite(t)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != session.CookieName {
		t.Fatalf("cookies %v", cookies)
	}
	if c := cookies[0]; !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Fatalf("cookie flags %+v", c)
	}
}

func TestFormWithoutValidTokenIsRefused(t *testing.T) {
	srv, _, _ := newSite(t)
	b := newBrowser(t, srv.URL)
	token, _ := b.home()
	cases := []struct {
		name   string
		form   url.Values
		header http.Header
		want   int
	}{
		{"no token", url.Values{}, nil, http.StatusForbidden},
		{"wrong token", url.Values{session.FormField: {"forged"}}, nil, http.StatusForbidden},
		{"right token", url.Values{session.FormField: {token}}, nil, http.StatusOK},
		{"right token in header", url.Values{}, http.Header{session.HeaderName: {token}}, http.StatusOK},
		{"right token but cross-site", url.Values{session.FormField: {token}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
	}
	for _, c := range cases {
		if got := b.post("/echo", c.form, c.header).StatusCode; got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	// Another browser's token is worthless here.
	other := newBrowser(t, srv.URL)
	otherToken, _ := other.home()
	if got := b.post("/echo", url.Values{session.FormField: {otherToken}}, nil).StatusCode; got != http.StatusForbidden {
		t.Errorf("token of another session accepted: %d", got)
	}
}

func TestSignInRotatesIDStoresWithTTLAndSignOutEnds(t *testing.T) {
	srv, kv, js := newSite(t)
	b := newBrowser(t, srv.URL)
	token, _ := b.home()
	u, _ := url.Parse(srv.URL)
	anonID := b.c.Jar.Cookies(u)[0].Value

	if resp := b.post("/in", url.Values{session.FormField: {token}, "user": {"u1"}}, nil); resp.StatusCode != 200 {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	signedID := b.c.Jar.Cookies(u)[0].Value
	if signedID == anonID {
		t.Fatal("session id not rotated on sign-in")
	}
	newToken, user := b.home()
	if user != "u1" {
		t.Fatalf("signed-in user %q, want u1", user)
	}
	if newToken == token {
		t.Fatal("CSRF token did not change with the session")
	}
	ctx := testenv.Context(t, 5*time.Second)
	if _, err := kv.Get(ctx, session.StoreKey(signedID)); err != nil {
		t.Fatalf("session not stored: %v", err)
	}
	// The bucket holds only the hash of the cookie value: reading it gives
	// nobody a cookie that signs them in.
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		if strings.Contains(k, signedID) {
			t.Fatalf("session bucket key %q contains the cookie value", k)
		}
	}
	// The key carries its TTL as a per-message header.
	raw, err := kvRaw(ctx, js, session.StoreKey(signedID))
	if err != nil {
		t.Fatal(err)
	}
	if ttl := raw.Header.Get("Nats-TTL"); ttl == "" {
		t.Fatal("session key stored without a TTL")
	}

	if resp := b.post("/out", url.Values{session.FormField: {newToken}}, nil); resp.StatusCode != 200 {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if _, user := b.home(); user != "" {
		t.Fatalf("still signed in as %q after sign-out", user)
	}
	if _, err := kv.Get(ctx, session.StoreKey(signedID)); err == nil {
		t.Fatal("session record left after sign-out")
	}
	// A stolen id replayed after sign-out is anonymous.
	stale := newBrowser(t, srv.URL)
	stale.c.Jar.SetCookies(u, []*http.Cookie{{Name: session.CookieName, Value: signedID}})
	if _, user := stale.home(); user != "" {
		t.Fatalf("old session id still signed in as %q", user)
	}
}

func kvRaw(ctx context.Context, js jetstream.JetStream, key string) (*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, "KV_"+subjects.SessionsBucket)
	if err != nil {
		return nil, err
	}
	return s.GetLastMsgForSubject(ctx, "$KV."+subjects.SessionsBucket+"."+key)
}
