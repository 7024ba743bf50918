package site_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

func TestJSONErrorAnswersEachCodeWithItsStatusTheCodeAndTheMessage(t *testing.T) {
	for _, c := range []struct {
		code   site.Code
		status int
	}{
		{site.CodeBadRequest, 400},
		{site.CodeUnauthorized, 401},
		{site.CodeNotFound, 404},
		{site.CodeTimeout, 408},
		{site.CodeTooLarge, 413},
		{site.CodeInvalid, 422},
		{site.CodeOutOfRange, 422},
		{site.CodeRateLimited, 429},
		{site.CodeInternal, 500},
		{site.CodeUnavailable, 503},
	} {
		rec := httptest.NewRecorder()
		site.JSONError(rec, c.code, "limit of %d exceeded", 7)
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: body %q is not JSON: %v", c.code, rec.Body, err)
		}
		if rec.Code != c.status || body["code"] != string(c.code) || body["error"] != "limit of 7 exceeded" ||
			rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: got %d %s %v, want %d with code and message", c.code, rec.Code, rec.Header().Get("Content-Type"), body, c.status)
		}
	}
}

func TestAnAPIErrorEmbeddedWithMoreFieldsKeepsCodeAndError(t *testing.T) {
	type batchError struct {
		site.ErrorBody
		Rejected []int `json:"rejected"`
	}
	rec := httptest.NewRecorder()
	site.WriteJSON(rec, site.CodeBadRequest.Status(), batchError{site.Errorf(site.CodeBadRequest, "no item accepted"), []int{0, 2}})
	want := `{"code":"bad_request","error":"no item accepted","rejected":[0,2]}`
	if got := strings.TrimSpace(rec.Body.String()); got != want || rec.Code != 400 {
		t.Fatalf("got %d %s, want 400 %s", rec.Code, got, want)
	}
}

func TestAPIKeyIsReadFromTheHeaderThenFromABearerToken(t *testing.T) {
	for _, c := range []struct {
		name         string
		header, auth string
		want         string
	}{
		{"header", "k1", "", "k1"},
		{"bearer", "", "Bearer k2", "k2"},
		{"header wins", "k1", "Bearer k2", "k1"},
		{"other scheme", "", "Basic abc", ""},
		{"none", "", "", ""},
	} {
		r := httptest.NewRequest("GET", "/api/x", nil)
		if c.header != "" {
			r.Header.Set(site.APIKeyHeader, c.header)
		}
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		if got := site.APIKey(r); got != c.want {
			t.Errorf("%s: APIKey = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestClientIPIsThePeerAddressWithoutItsPort(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:5123":    "192.0.2.7",
		"[2001:db8::1]:443": "2001:db8::1",
		"no-port-at-all":    "no-port-at-all",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if got := site.ClientIP(r); got != want {
			t.Errorf("ClientIP(%q) = %q, want %q", remote, got, want)
		}
	}
}

func TestRenderFramesTheBodyInTheLayoutWithTheNavigationAndStatus(t *testing.T) {
	body := templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "<p>the body</p>")
		return err
	})
	h := site.WithNav([]site.Link{{Name: "Tracker", Path: "/tracker"}, {Name: "Events", Path: "/events"}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			site.Pages{}.Render(w, r, http.StatusTeapot, "Kettle", body)
		}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/kettle", nil))
	got := rec.Body.String()
	for _, want := range []string{"<title>Kettle · jetfleet</title>", `<a href="/tracker">Tracker</a>`, `<a href="/events">Events</a>`, "<main><p>the body</p></main>"} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %s:\n%s", want, got)
		}
	}
	if rec.Code != http.StatusTeapot || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("got %d %s, want 418 text/html", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestFailAnswers500AndLogsThePathAndUserIDButNotTheEmail(t *testing.T) {
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
	var logs testenv.Buffer
	pages := site.Pages{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	mux := http.NewServeMux()
	mux.Handle("GET /broken", m.Gate(func(context.Context, string) error { return nil })(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pages.Fail(w, r, "load the thing", errors.New("disk on fire"))
	})))
	mux.HandleFunc("GET /in", func(w http.ResponseWriter, r *http.Request) {
		if _, err := m.SignIn(r.Context(), w, r, "u-42", "pat@example.com"); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	srv := httptest.NewServer(m.Middleware(mux))
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	if resp, err := client.Get(srv.URL + "/in"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	resp, err := client.Get(srv.URL + "/broken")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(page), "Something went wrong on our side") {
		t.Errorf("got %d %q, want 500 saying the failure is ours", resp.StatusCode, page)
	}
	line := logs.String()
	for _, want := range []string{"load the thing", "path=/broken", "user=u-42", "disk on fire"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %s: %s", want, line)
		}
	}
	if strings.Contains(line, "pat@example.com") {
		t.Errorf("log line carries the email: %s", line)
	}
}

func TestAttachmentNamesTheFileInASCIIAndUTF8WithoutPathsOrControls(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"slides.pdf", `attachment; filename="slides.pdf"; filename*=UTF-8''slides.pdf`},
		{"Präsentation 1.pdf", `attachment; filename="Pr_sentation 1.pdf"; filename*=UTF-8''Pr%C3%A4sentation%201.pdf`},
		{`..\..\etc/passwd`, `attachment; filename="passwd"; filename*=UTF-8''passwd`},
		{"a\"b;\r\nSet-Cookie: x=1.txt", `attachment; filename="a_b;Set-Cookie_ x=1.txt"; filename*=UTF-8''a_b%3BSet-Cookie_%20x%3D1.txt`},
		{"evil\u202egpj.exe", `attachment; filename="evilgpj.exe"; filename*=UTF-8''evilgpj.exe`},
		{"100%.txt", `attachment; filename="100_.txt"; filename*=UTF-8''100%25.txt`},
		{"...", `attachment; filename="file"; filename*=UTF-8''file`},
	} {
		if got := site.Attachment(c.name, "file"); got != c.want {
			t.Errorf("Attachment(%q)\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}
