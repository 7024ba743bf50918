package enricher_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/enricherkeys"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web/enricher"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) { testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c }) }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func setup(t *testing.T) (jetstream.JetStream, *httptest.Server, string) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	keys, err := enricherkeys.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.Issue(ctx, "test producer", 0)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	enricher.NewIngest(js, keys, quiet()).Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return js, srv, key
}

func post(t *testing.T, url, key, body string) (int, enricher.IngestResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set(enricher.APIKeyHeader, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out enricher.IngestResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return resp.StatusCode, out
}

func inputCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(testenv.Context(t, 5*time.Second), subjects.InputStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

func TestNDJSONBatchAcceptsValidLinesAndReportsBadOnesByLine(t *testing.T) {
	js, srv, key := setup(t)
	body := strings.Join([]string{
		`{"user_uuid":"u1","language":"es","title":"one"}`,
		`{"user_uuid":"u1"}`,
		``,
		`{"user_uuid":"u2","language":"de","percentage_completed_in_course":"half"}`,
		`{"user_uuid":"u2","language":"de"}`,
		`oops`,
	}, "\n")
	status, resp := post(t, srv.URL+"/api/enricher/v1/events/lesson", key, body)
	if status != http.StatusOK || resp.Accepted != 2 {
		t.Fatalf("status %d, %+v", status, resp)
	}
	want := map[int]string{2: "language: required", 4: "percentage_completed_in_course: must be an integer", 6: "must be one JSON object"}
	if len(resp.Rejected) != len(want) {
		t.Fatalf("rejected %+v", resp.Rejected)
	}
	for _, r := range resp.Rejected {
		if !strings.Contains(r.Error, want[r.Line]) {
			t.Errorf("line %d: %q, want it to mention %q", r.Line, r.Error, want[r.Line])
		}
	}
	if n := inputCount(t, js); n != 2 {
		t.Errorf("INPUT holds %d events, want 2", n)
	}
}

func TestIngestRejectsMissingKeysUnknownKindsAndAllBadBatches(t *testing.T) {
	_, srv, key := setup(t)
	if status, resp := post(t, srv.URL+"/api/enricher/v1/events/user", "", `{}`); status != http.StatusUnauthorized || !strings.Contains(resp.Error, "missing API key") {
		t.Errorf("no key: %d %+v", status, resp)
	}
	if status, _ := post(t, srv.URL+"/api/enricher/v1/events/user", "jfe_wrong", `{}`); status != http.StatusUnauthorized {
		t.Errorf("wrong key: %d", status)
	}
	if status, resp := post(t, srv.URL+"/api/enricher/v1/events/course", key, `{}`); status != http.StatusNotFound || !strings.Contains(resp.Error, "use user, subscription or lesson") {
		t.Errorf("unknown kind: %d %+v", status, resp)
	}
	if status, resp := post(t, srv.URL+"/api/enricher/v1/events/user", key, `{"operation":"create"}`); status != http.StatusUnprocessableEntity || resp.Rejected[0].Line != 1 {
		t.Errorf("all bad: %d %+v", status, resp)
	}
}

func TestPageShowsLessonsByLanguageTypeAndCountry(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 30*time.Second)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), quiet()); err != nil {
		t.Fatal(err)
	}
	w, err := analytics.NewBatchWriter(conn, analytics.WriterConfig{Table: analytics.EnricherLessonsTable, Columns: analytics.EnricherLessonsColumns}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, r := range [][]string{{"es", "premium", "DE"}, {"es", "premium", "DE"}, {"fr", "basic", "FR"}, {"it", "", ""}} {
		if err := w.Append(ctx, now.Add(-time.Minute), uint64(i+1), "u", r[0], "c", r[1], "active", r[2], "complete"); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, js := testenv.JetStream(t)
	page := enricher.NewPage(conn, enricher.NewRates(js, time.Second), quiet(), func(c templ.Component) templ.Component { return c })
	mux := http.NewServeMux()
	page.Routes(mux, func(h http.Handler) http.Handler { return h })
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/enricher?range=1h", nil))
	html, _ := io.ReadAll(rec.Body)
	page2 := string(html)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, page2)
	}
	for _, want := range []string{"<td>es</td><td>premium</td><td>DE</td><td><strong>2</strong>", "<td>fr</td><td>basic</td><td>FR</td>", "<td>it</td><td>(unknown)</td><td>(unknown)</td>", "<svg"} {
		if !strings.Contains(page2, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// postIdem posts body with an idempotency key and wants it accepted.
func postIdem(t *testing.T, url, key, idem, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set(enricher.APIKeyHeader, key)
	req.Header.Set(enricher.IdempotencyHeader, idem)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out enricher.IngestResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Accepted != 1 {
		t.Fatalf("post with %s %q: status %d, %+v, %v", enricher.IdempotencyHeader, idem, resp.StatusCode, out, err)
	}
}

// An idempotency key protects one producer's retries; it never lets one
// producer suppress another's event while the API answers accepted, even
// when owner and key are spelled to run together ("a:b"+"c" vs "a"+"b:c").
func TestIdempotencyKeyIsScopedToTheAPIKeysOwner(t *testing.T) {
	js, srv, key := setup(t)
	ctx := testenv.Context(t, 10*time.Second)
	keys, err := enricherkeys.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string) string {
		k, err := keys.Issue(ctx, name, 0)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	other, ab, a := issue("other producer"), issue("a:b"), issue("a")
	url := srv.URL + "/api/enricher/v1/events/lesson"
	postIdem(t, url, key, "batch-1", `{"user_uuid":"u1","language":"es","from":"test producer"}`)
	postIdem(t, url, key, "batch-1", `{"user_uuid":"u1","language":"es","from":"test producer"}`) // its own retry
	postIdem(t, url, other, "batch-1", `{"user_uuid":"u2","language":"es","from":"other producer"}`)
	postIdem(t, url, ab, "c", `{"user_uuid":"u3","language":"es","from":"a:b"}`)
	postIdem(t, url, a, "b:c", `{"user_uuid":"u4","language":"es","from":"a"}`)
	if n := inputCount(t, js); n != 4 {
		t.Errorf("INPUT holds %d events, want 4: one per producer (the retry dropped, no other producer's event)", n)
	}
}
