package web_test

import (
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

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web/session"
)

type visitor struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newVisitor(t *testing.T, base string) *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var csrfInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (v *visitor) get(path string) (int, string) {
	v.t.Helper()
	resp, err := v.c.Get(v.base + path)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post submits a form the way a browser would after loading page: with the
// CSRF token rendered into it.
func (v *visitor) post(page, path string, form url.Values) *http.Response {
	v.t.Helper()
	_, body := v.get(page)
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		v.t.Fatalf("no CSRF field on %s", page)
	}
	form.Set(session.FormField, m[1])
	resp, err := v.c.PostForm(v.base+path, form)
	if err != nil {
		v.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func lastMail(t *testing.T, js jetstream.JetStream) subjects.Mail {
	t.Helper()
	ctx := testenv.Context(t, 5*time.Second)
	s, err := js.Stream(ctx, subjects.MailStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subjects.MailSend)
	if err != nil {
		t.Fatalf("no mail enqueued: %v", err)
	}
	var out subjects.Mail
	if err := json.Unmarshal(m.Data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

var linkPattern = regexp.MustCompile(`https?://\S+/signin/verify\?token=(\S+)`)

func TestMagicLinkSignInFlow(t *testing.T) {
	e := startEdge(t)
	v := newVisitor(t, e.URL)

	resp := v.post("/signin", "/signin", url.Values{"email": {"Ada@Example.com"}, "next": {"/tracker"}})
	if resp.StatusCode != 200 {
		t.Fatalf("request link = %d", resp.StatusCode)
	}
	m := lastMail(t, e.js)
	if m.To != "ada@example.com" || !strings.Contains(m.Subject, "sign-in link") {
		t.Fatalf("mail %+v", m)
	}
	link := linkPattern.FindStringSubmatch(m.Text)
	if link == nil {
		t.Fatalf("no link in mail text %q", m.Text)
	}
	token, _ := url.QueryUnescape(link[1])

	// Opening the link only shows a confirmation; a mail scanner's GET does
	// not sign anyone in or spend the token.
	if code, body := v.get("/signin/verify?token=" + url.QueryEscape(token)); code != 200 || !strings.Contains(body, "Sign in to jetfleet") || !strings.Contains(body, "signing in as <strong>ada@example.com</strong>") {
		t.Fatalf("confirm page = %d", code)
	}
	resp = v.post("/signin/verify?token="+url.QueryEscape(token), "/signin/verify", url.Values{"token": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/tracker" {
		t.Fatalf("verify = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := v.get("/"); !strings.Contains(body, "ada@example.com") || !strings.Contains(body, "Sign out") {
		t.Fatal("home does not show the signed-in user")
	}

	// The link works once: its page now says so, and posting it fails.
	other := newVisitor(t, e.URL)
	if code, body := other.get("/signin/verify?token=" + url.QueryEscape(token)); code != http.StatusBadRequest || !strings.Contains(body, "already used") {
		t.Fatalf("spent link's page = %d", code)
	}
	resp = other.post("/signin", "/signin/verify", url.Values{"token": {token}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("second use of the link = %d, want 400", resp.StatusCode)
	}

	resp = v.post("/", "/signout", url.Values{})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out = %d", resp.StatusCode)
	}
	if _, body := v.get("/"); strings.Contains(body, "ada@example.com") {
		t.Fatal("still signed in after sign-out")
	}
}

func TestSignInRejectsBadEmailOffSiteRedirectAndFloods(t *testing.T) {
	e := startEdge(t)
	v := newVisitor(t, e.URL)
	if resp := v.post("/signin", "/signin", url.Values{"email": {"not an email"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad email = %d, want 422", resp.StatusCode)
	}

	// next pointing off-site lands on the home page instead.
	v.post("/signin", "/signin", url.Values{"email": {"bob@example.com"}, "next": {"//evil.example/phish"}})
	token := linkPattern.FindStringSubmatch(lastMail(t, e.js).Text)[1]
	token, _ = url.QueryUnescape(token)
	resp := v.post("/signin/verify?token="+url.QueryEscape(token), "/signin/verify", url.Values{"token": {token}})
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Fatalf("redirect after sign-in to %q, want /", loc)
	}

	// One inbox cannot be flooded with links.
	codes := []int{}
	for range 5 {
		codes = append(codes, v.post("/signin", "/signin", url.Values{"email": {"carol@example.com"}}).StatusCode)
	}
	if codes[0] != 200 || codes[4] != http.StatusTooManyRequests {
		t.Fatalf("statuses for 5 quick requests: %v, want 200 first and 429 last", codes)
	}
}

func TestOutboxIsServedOnlyByDevelopmentEdges(t *testing.T) {
	e := startEdge(t)
	v := newVisitor(t, e.URL)
	if code, _ := v.get("/outbox"); code != 404 {
		t.Fatalf("outbox on a non-dev edge = %d, want 404", code)
	}
}
