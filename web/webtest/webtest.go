// Package webtest drives the edge the way a browser does, for the tests of
// product pages: a cookie jar, forms with their CSRF token, and signing in
// through the real magic-link flow (the link is read from the MAIL stream,
// where the edge enqueued it).
package webtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Browser is one visitor with its own cookies.
type Browser struct {
	t    testing.TB
	Base string
	HTTP *http.Client
}

// NewBrowser returns a visitor of the site at base that does not follow
// redirects, so tests can assert them.
func NewBrowser(t testing.TB, base string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, Base: base, HTTP: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// Get fetches path and returns the status and body.
func (b *Browser) Get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.HTTP.Get(b.Base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// Submit loads page, takes the CSRF token from its form and posts form to
// action, as a person filling in that page would. It returns the response
// with its body read.
func (b *Browser) Submit(page, action string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	_, body := b.Get(page)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no form with a CSRF token on %s", page)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", m[1])
	resp, err := b.HTTP.PostForm(b.Base+action, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", action, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

var signInLink = regexp.MustCompile(`/signin/verify\?token=(\S+)`)

// SignIn signs the browser in as email through the magic-link flow.
func (b *Browser) SignIn(js jetstream.JetStream, email string) {
	b.t.Helper()
	if resp, _ := b.Submit("/signin", "/signin", url.Values{"email": {email}}); resp.StatusCode != http.StatusOK {
		b.t.Fatalf("request sign-in link for %s: %d", email, resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, subjects.MailStream)
	if err != nil {
		b.t.Fatal(err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, subjects.MailSend)
	if err != nil {
		b.t.Fatalf("no sign-in mail: %v", err)
	}
	var m subjects.Mail
	if err := json.Unmarshal(raw.Data, &m); err != nil || !strings.EqualFold(m.To, email) {
		b.t.Fatalf("last mail is not the sign-in mail of %s: %+v %v", email, m, err)
	}
	found := signInLink.FindStringSubmatch(m.Text)
	if found == nil {
		b.t.Fatalf("no sign-in link in %q", m.Text)
	}
	token, _ := url.QueryUnescape(found[1])
	resp, _ := b.Submit("/signin/verify?token="+url.QueryEscape(token), "/signin/verify", url.Values{"token": {token}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("confirm sign-in of %s: %d", email, resp.StatusCode)
	}
}
