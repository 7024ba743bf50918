package web_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) {
	testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c })
}

type edge struct {
	*httptest.Server
	nats *testenv.NATS
	js   jetstream.JetStream
}

func startEdge(t *testing.T) *edge {
	t.Helper()
	return startEdgeWith(t, func(*web.Config) {})
}

func startEdgeWith(t *testing.T, configure func(*web.Config)) *edge {
	t.Helper()
	srv := testenv.StartNATS(t)
	nc, js := srv.Connect(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	cfg := web.Config{SessionSecret: []byte(strings.Repeat("s", 32)), BaseURL: "http://jetfleet.test"}
	configure(&cfg)
	h, err := web.New(ctx, cfg, web.Deps{
		NATS: nc, JS: js, ClickHouse: conn, Gatherer: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &edge{Server: hs, nats: srv, js: js}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHomeLinksEveryProductWithSecurityHeaders(t *testing.T) {
	e := startEdge(t)
	resp, body := get(t, e.URL+"/")
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	for _, want := range []string{`href="/tracker"`, `href="/events"`, `href="/counter"`, `href="/enricher"`, `href="/media"`, "<title>Home · jetfleet</title>"} {
		if !strings.Contains(body, want) {
			t.Errorf("home page lacks %s", want)
		}
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly {
		t.Errorf("session cookie missing or not HttpOnly: %v", resp.Cookies())
	}
}

func TestStaticAssetsAreServed(t *testing.T) {
	e := startEdge(t)
	resp, body := get(t, e.URL+"/static/site.css")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(body, ".card") {
		t.Fatalf("site.css: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ := get(t, e.URL+"/static/missing.css"); resp.StatusCode != 404 {
		t.Fatalf("missing asset = %d", resp.StatusCode)
	}
}

func TestUnknownPathIs404AndPostWithoutTokenIs403(t *testing.T) {
	e := startEdge(t)
	if resp, _ := get(t, e.URL+"/no-such-page"); resp.StatusCode != 404 {
		t.Errorf("unknown page = %d", resp.StatusCode)
	}
	resp, err := http.Post(e.URL+"/tracker", "application/x-www-form-urlencoded", strings.NewReader("x=1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without CSRF token = %d, want 403", resp.StatusCode)
	}
}

func TestReadyzReportsEachDependency(t *testing.T) {
	e := startEdge(t)
	resp, body := get(t, e.URL+"/readyz")
	var checks map[string]string
	if err := json.Unmarshal([]byte(body), &checks); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	if resp.StatusCode != 200 || checks["nats"] != "ok" || checks["clickhouse"] != "ok" {
		t.Fatalf("readyz with everything up = %d %v", resp.StatusCode, checks)
	}
	if resp, body := get(t, e.URL+"/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("healthz = %d %q", resp.StatusCode, body)
	}

	e.nats.Server.Shutdown()
	testenv.Eventually(t, 10*time.Second, "readyz turns 503 naming nats", func() bool {
		resp, body := get(t, e.URL+"/readyz")
		json.Unmarshal([]byte(body), &checks)
		return resp.StatusCode == http.StatusServiceUnavailable && checks["nats"] != "ok" && checks["clickhouse"] == "ok"
	})
	// Liveness does not depend on NATS: a restart would not fix it.
	if resp, _ := get(t, e.URL+"/healthz"); resp.StatusCode != 200 {
		t.Fatalf("healthz with NATS down = %d", resp.StatusCode)
	}
}

func TestMetricsAreServedOnTheSiteOnlyWhenAskedFor(t *testing.T) {
	// An edge serves them on its own listener; the public site has none.
	e := startEdge(t)
	if resp, _ := get(t, e.URL+"/metrics"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public /metrics = %d, want 404", resp.StatusCode)
	}
	// `jetfleet dev`, bound to loopback, serves them on the site.
	dev := startEdgeWith(t, func(c *web.Config) { c.ServeMetrics = true })
	resp, body := get(t, dev.URL+"/metrics")
	if resp.StatusCode != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics = %d, has go_goroutines: %v", resp.StatusCode, strings.Contains(body, "go_goroutines"))
	}
}

// countingReader is an endless form body that counts what was read of it.
type countingReader struct{ n atomic.Int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

func TestPageFormBodiesAreLimitedBeforeTheyAreRead(t *testing.T) {
	e := startEdge(t)
	// An anonymous 300 MB form without a length: refused after the limit,
	// not read to the end.
	body := &countingReader{}
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/signin", io.LimitReader(body, 300<<20))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("300 MB form = %d %q, want 413", resp.StatusCode, msg)
		}
	}
	if sent := body.n.Load(); sent > 32<<20 {
		t.Errorf("the edge read %d MB of an oversized form", sent>>20)
	}

	// A declared length over the limit is refused before any byte is read.
	req, _ = http.NewRequest(http.MethodPost, e.URL+"/signin", strings.NewReader(strings.Repeat("a", 2<<20)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MB form = %d, want 413", resp.StatusCode)
	}

	// Multipart is refused where no upload is taken: nothing spooled to disk.
	req, _ = http.NewRequest(http.MethodPost, e.URL+"/signin", strings.NewReader("--x\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\na@b.c\r\n--x--\r\n"))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(msg), "file uploads") {
		t.Errorf("multipart form = %d %q, want 415 with a reason", resp.StatusCode, msg)
	}
}
