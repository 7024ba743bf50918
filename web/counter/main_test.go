package counter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/apikeys"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web"
	wcounter "jetfleet/web/counter"
	"jetfleet/workers/counter"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) {
	// UTC+05:30: answers must be bucketed in UTC anyway.
	testenv.ClickHouseMainWith(m, testenv.ClickHouseOptions{Timezone: testenv.NonUTCZone}, func(c *testenv.ClickHouse) { ch = c })
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// env is a real edge (web.New) over a real JetStream and ClickHouse, with
// helpers to run counter workers beside it.
type env struct {
	t    *testing.T
	nc   *nats.Conn
	js   jetstream.JetStream
	ch   driver.Conn
	srv  *httptest.Server
	keys *apikeys.Store
}

func newEnv(t *testing.T) *env { return newEnvWith(t, envOptions{}) }

// newEnvRetention is newEnv with the VIEWS retention and the edge's
// timestamp limit set to retention (0: the default).
func newEnvRetention(t *testing.T, retention time.Duration) *env {
	return newEnvWith(t, envOptions{retention: retention})
}

// envOptions change the edge of an env; zero values are the defaults.
type envOptions struct {
	retention   time.Duration
	bodyTimeout time.Duration
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	retention := o.retention
	nc, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 60*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{CounterRetention: retention}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	edge, err := web.New(ctx, web.Config{SessionSecret: bytes.Repeat([]byte("s"), 32), CounterRetention: retention, CounterBodyTimeout: o.bodyTimeout},
		web.Deps{NATS: nc, JS: js, ClickHouse: conn, Gatherer: prometheus.NewRegistry(), Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(edge)
	t.Cleanup(srv.Close)
	keys, err := apikeys.OpenCounter(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, nc: nc, js: js, ch: conn, srv: srv, keys: keys}
}

// key issues an API key of tenant. Its reads are not limited: tests poll
// stats until ingest is visible, many reads a second on a slow machine;
// the read limit has tests of its own (readlimit_test.go).
func (e *env) key(tenant string, rate float64) string {
	e.t.Helper()
	k, _, err := e.keys.Issue(context.Background(), apikeys.NewKey{Tenant: tenant, Name: "test", RateLimit: rate, ReadLimit: 1e9})
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// worker runs a counter worker until the returned stop is called.
func (e *env) worker(cfg counter.Config) (stop func()) {
	e.t.Helper()
	if cfg.FlushEvery == 0 {
		cfg.FlushEvery = 100 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := counter.New(e.js, e.ch, cfg, quiet())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) post(key, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	default:
		data, _ = json.Marshal(b)
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(data))
	if key != "" {
		req.Header.Set(wcounter.APIKeyHeader, key)
	}
	return e.do(req)
}

func (e *env) get(key, path string, q url.Values) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path+"?"+q.Encode(), nil)
	req.Header.Set(wcounter.APIKeyHeader, key)
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, map[string]any) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("%s %s: %d %q is not JSON", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// stats reads getStats for video over [start, end).
func (e *env) stats(key, video, typ, fn string, start, end time.Time) map[string]any {
	e.t.Helper()
	status, out := e.get(key, "/api/counter/v1/videos/"+video+"/stats", url.Values{
		"type": {typ}, "function": {fn}, "start": {start.Format(time.RFC3339)}, "end": {end.Format(time.RFC3339)}})
	if status != http.StatusOK {
		e.t.Fatalf("stats %s %s %s: %d %v", video, typ, fn, status, out)
	}
	return out
}

func ev(video, typ string, value int64, ts time.Time, key string) map[string]any {
	m := map[string]any{"video_id": video, "type": typ, "value": value, "timestamp": ts.Format(time.RFC3339Nano)}
	if key != "" {
		m["idempotency_key"] = key
	}
	return m
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

var _ = fmt.Sprint
