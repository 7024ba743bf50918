package session_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web/session"
)

// gated serves GET /page and POST /form behind the gate, answering with
// the user it put in the context, GET /open through Identify (answering
// "visitor" when it put no user there), and GET /in to sign in as ?user=.
func gated(t *testing.T, exists session.AccountCheck) *httptest.Server {
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
	m, err := session.New(kv, session.Config{Secret: []byte(strings.Repeat("k", 32)), TTL: time.Hour}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gate := m.Gate(exists)
	me := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := session.UserFrom(r.Context())
		if !ok {
			http.Error(w, "no user in context", 500)
			return
		}
		io.WriteString(w, u.ID+" "+u.Email)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /page", gate(me))
	mux.Handle("POST /form", gate(me))
	mux.Handle("GET /open", m.Identify(exists)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := session.UserFrom(r.Context()); ok {
			io.WriteString(w, u.ID+" "+u.Email)
			return
		}
		io.WriteString(w, "visitor")
	})))
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, session.From(r.Context()).CSRFToken()) })
	mux.HandleFunc("GET /in", func(w http.ResponseWriter, r *http.Request) {
		u := r.URL.Query().Get("user")
		if _, err := m.SignIn(r.Context(), w, r, u, u+"@example.com"); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	srv := httptest.NewServer(m.Middleware(mux))
	t.Cleanup(srv.Close)
	return srv
}

func TestGatePutsTheSignedInUserInTheContextAndSendsOthersToSignIn(t *testing.T) {
	srv := gated(t, func(_ context.Context, id string) error {
		switch id {
		case "pat":
			return nil
		case "gone":
			return session.ErrNoAccount
		}
		return errors.New("accounts unavailable")
	})

	anon := newBrowser(t, srv.URL)
	anon.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := anon.c.Get(srv.URL + "/page?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?next=%2Fpage%3Fx%3D1" {
		t.Fatalf("anonymous GET: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	for _, c := range []struct {
		user, want string
		status     int
	}{
		{"pat", "pat pat@example.com", http.StatusOK},
		{"gone", "", http.StatusSeeOther},
		{"unknown", "", http.StatusServiceUnavailable},
	} {
		b := newBrowser(t, srv.URL)
		b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		if resp, err := b.c.Get(srv.URL + "/in?user=" + c.user); err != nil || resp.StatusCode != 200 {
			t.Fatalf("sign in as %s: %v %v", c.user, resp, err)
		}
		resp, err := b.c.Get(srv.URL + "/page")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || (c.want != "" && string(body) != c.want) {
			t.Errorf("%s: GET /page = %d %q, want %d %q", c.user, resp.StatusCode, body, c.status, c.want)
		}
		if c.status == http.StatusSeeOther && resp.Header.Get("Location") != "/signin?next=%2Fpage" {
			t.Errorf("%s: redirected to %q", c.user, resp.Header.Get("Location"))
		}
	}

	// A refused form goes back to the page it was on, not to the POST URL.
	b := newBrowser(t, srv.URL)
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	b.c.Get(srv.URL + "/in?user=gone")
	tr, _ := b.c.Get(srv.URL + "/token")
	token, _ := io.ReadAll(tr.Body)
	tr.Body.Close()
	resp = b.post("/form", nil, http.Header{session.HeaderName: {string(token)}, "Referer": {srv.URL + "/page?tab=2"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?next=%2Fpage%3Ftab%3D2" {
		t.Errorf("form of a deleted account: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestIdentifyPutsAnExistingSignedInUserInTheContextAndServesEveryoneElseAsAVisitor(t *testing.T) {
	srv := gated(t, func(_ context.Context, id string) error {
		switch id {
		case "pat":
			return nil
		case "gone":
			return session.ErrNoAccount
		}
		return errors.New("accounts unavailable")
	})
	for _, c := range []struct{ user, want string }{
		{"", "visitor"},
		{"pat", "pat pat@example.com"},
		{"gone", "visitor"},
		{"unknown", "visitor"},
	} {
		b := newBrowser(t, srv.URL)
		if c.user != "" {
			if resp, err := b.c.Get(srv.URL + "/in?user=" + c.user); err != nil || resp.StatusCode != 200 {
				t.Fatalf("sign in as %s: %v %v", c.user, resp, err)
			}
		}
		resp, err := b.c.Get(srv.URL + "/open")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != c.want {
			t.Errorf("%q: GET /open = %d %q, want 200 %q", c.user, resp.StatusCode, body, c.want)
		}
	}
}
