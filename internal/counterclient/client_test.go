package counterclient_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"jetfleet/analytics"
	"jetfleet/internal/apikeys"
	"jetfleet/internal/counterclient"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web"
	"jetfleet/workers/counter"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) {
	testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c })
}

// edge starts a real edge and a counter worker and returns the edge's URL
// and an API key.
func edge(t *testing.T) (string, string) {
	t.Helper()
	nc, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 60*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := web.New(ctx, web.Config{SessionSecret: bytes.Repeat([]byte("k"), 32)},
		web.Deps{NATS: nc, JS: js, ClickHouse: conn, Gatherer: prometheus.NewRegistry(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		counter.New(js, conn, counter.Config{FlushEvery: 100 * time.Millisecond}, log).Run(wctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	keys, err := apikeys.OpenCounter(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := keys.Issue(ctx, apikeys.NewKey{Tenant: "acme", Name: "client test"})
	if err != nil {
		t.Fatal(err)
	}
	return hs.URL, key
}

func TestBufferedEventsAreCountedAndReadBack(t *testing.T) {
	base, key := edge(t)
	c, err := counterclient.New(counterclient.Config{BaseURL: base, APIKey: key, MaxBatch: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, 30*time.Second)
	for range 250 {
		c.CountViewEvent("v1")
	}
	c.ProcessEvent("v1", "LIKE", 4)
	c.ProcessEvent("v1", "LIKE", 6)
	c.Add(counterclient.Event{VideoID: "v1", Type: "NOPE"})
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rej := c.Rejected(); len(rej) != 1 || rej[0].Event.Type != "NOPE" {
		t.Errorf("rejected = %+v, want the NOPE event", rej)
	}
	start, end := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	testenv.Eventually(t, 15*time.Second, "250 views readable", func() bool {
		s, err := c.GetViewCount(ctx, "v1", start, end)
		return err == nil && s.Value == 250
	})
	s, err := c.GetStats(ctx, "v1", "LIKE", "AVG", start, end, "minute")
	if err != nil || s.Value != 5 || s.Count != 2 || len(s.Series) == 0 {
		t.Errorf("AVG of likes = %+v, %v; want 5 over 2 events with a series", s, err)
	}
}

// The edge accepts a batch but its answer is lost; the client's retry
// carries the same Idempotency-Key and is not counted again.
func TestRetriedBatchAfterLostAnswerCountsOnce(t *testing.T) {
	base, key := edge(t)
	target, _ := url.Parse(base)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var posts atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && posts.Add(1) == 1 {
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r) // accepted by the edge…
			http.Error(w, "gateway lost the answer", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer flaky.Close()
	c, err := counterclient.New(counterclient.Config{BaseURL: flaky.URL, APIKey: key, BackoffMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, 30*time.Second)
	events := make([]counterclient.Event, 10)
	for i := range events {
		events[i] = counterclient.Event{VideoID: "v2"}
	}
	res, err := c.Send(ctx, events)
	if err != nil || !res.RequestDuplicate {
		t.Fatalf("send: %+v %v; want success reported as a duplicate of the lost attempt", res, err)
	}
	start, end := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	testenv.Eventually(t, 15*time.Second, "10 views readable", func() bool {
		s, err := c.GetViewCount(ctx, "v2", start, end)
		return err == nil && s.Value >= 10
	})
	if s, _ := c.GetViewCount(ctx, "v2", start, end); s.Value != 10 {
		t.Errorf("views = %v, want 10", s.Value)
	}
}

func TestBreakerOpensOnAFailingEdgeAndFailsFast(t *testing.T) {
	var calls atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, `{"error":"down"}`, http.StatusServiceUnavailable)
	}))
	defer down.Close()
	c, err := counterclient.New(counterclient.Config{BaseURL: down.URL, APIKey: "jfc_x", MaxAttempts: 3,
		BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond, BreakerCooldown: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, 10*time.Second)
	for range 3 {
		c.GetViewCount(ctx, "v", time.Now().Add(-time.Hour), time.Now())
	}
	if c.State() != "open" {
		t.Fatalf("breaker %s after %d failed calls, want open", c.State(), calls.Load())
	}
	before := calls.Load()
	_, err = c.GetViewCount(ctx, "v", time.Now().Add(-time.Hour), time.Now())
	if !errors.Is(err, gobreaker.ErrOpenState) || calls.Load() != before {
		t.Errorf("open breaker: err %v, %d more calls reached the edge; want fail-fast", err, calls.Load()-before)
	}
}
