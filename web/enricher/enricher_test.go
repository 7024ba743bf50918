package enricher_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/apikeys"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web/enricher"
	"jetfleet/web/session"
	"jetfleet/web/site"
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
	keys, err := apikeys.OpenEnricher(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := keys.Issue(ctx, apikeys.NewKey{Name: "test producer"})
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
	n, _, err := subjects.EnricherInputStats(testenv.Context(t, 5*time.Second), js)
	if err != nil {
		t.Fatal(err)
	}
	return n
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

func TestIngestErrorsCarryTheStableCodeOfTheirStatus(t *testing.T) {
	_, srv, key := setup(t)
	for _, c := range []struct {
		name, kind, key, body string
		code                  site.Code
	}{
		{"no key", "user", "", `{}`, site.CodeUnauthorized},
		{"unknown kind", "course", key, `{}`, site.CodeNotFound},
		{"every line rejected", "user", key, `{"operation":"create"}`, site.CodeInvalid},
	} {
		status, resp := post(t, srv.URL+"/api/enricher/v1/events/"+c.kind, c.key, c.body)
		if status != c.code.Status() || resp.Code != c.code || resp.Error == "" {
			t.Errorf("%s: %d %+v, want %d with code %q and a message", c.name, status, resp, c.code.Status(), c.code)
		}
	}
}

// pageSite serves /enricher behind the site's sign-in gate, over a
// ClickHouse database holding lessons of alice (es/premium/DE ×2), bob
// (fr/basic/FR ×3) and nobody (it, unknown type and country ×1). alice and
// bob have API keys, carol has none, olga is an operator.
type pageSite struct {
	t   *testing.T
	url string
}

func newPageSite(t *testing.T) *pageSite {
	t.Helper()
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
	for i, r := range [][]string{
		{"es", "premium", "DE", "alice"}, {"es", "premium", "DE", "alice"},
		{"fr", "basic", "FR", "bob"}, {"fr", "basic", "FR", "bob"}, {"fr", "basic", "FR", "bob"},
		{"it", "", "", ""},
	} {
		if err := w.Append(ctx, now.Add(-time.Minute), uint64(i+1), "u", r[0], "c", r[1], "active", r[2], "complete", r[3]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, js := testenv.JetStream(t)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	keys, err := apikeys.OpenEnricher(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ uid, name string }{{"alice", "alice's app"}, {"bob", "bob's app"}, {"", "an operator's script"}} {
		if _, _, err := keys.Issue(ctx, apikeys.NewKey{Owner: k.uid, Name: k.name}); err != nil {
			t.Fatal(err)
		}
	}
	kv, _ := js.KeyValue(ctx, subjects.SessionsBucket)
	sessions, err := session.New(kv, session.Config{Secret: []byte(strings.Repeat("k", 32)), TTL: time.Hour}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	rates := enricher.NewRates(js, time.Second)
	page := enricher.NewPage(enricher.PageDeps{
		ClickHouse: conn, Rates: rates, Keys: keys, Log: quiet(),
		Operator: func(_ context.Context, uid string) (bool, error) { return uid == "olga", nil },
	})
	mux := http.NewServeMux()
	page.Routes(mux, sessions.Gate(func(context.Context, string) error { return nil }))
	mux.HandleFunc("GET /test/signin", func(w http.ResponseWriter, r *http.Request) {
		u := r.URL.Query().Get("user")
		if _, err := sessions.SignIn(r.Context(), w, r, u, u+"@example.com"); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	srv := httptest.NewServer(sessions.Middleware(mux))
	t.Cleanup(srv.Close)
	return &pageSite{t: t, url: srv.URL}
}

// page returns /enricher?range=1h as seen by user.
func (s *pageSite) page(user string) string {
	s.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	for _, path := range []string{"/test/signin?user=" + user, "/enricher?range=1h"} {
		resp, err := c.Get(s.url + path)
		if err != nil {
			s.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			s.t.Fatalf("%s as %s: %d %s", path, user, resp.StatusCode, body)
		}
		if path != "/test/signin?user="+user {
			return string(body)
		}
	}
	return ""
}

var (
	aliceRow   = "<td>es</td><td>premium</td><td>DE</td><td><strong>2</strong>"
	bobRow     = "<td>fr</td><td>basic</td><td>FR</td><td><strong>3</strong>"
	nobodysRow = "<td>it</td><td>(unknown)</td><td>(unknown)</td>"
	liveRates  = "Live rates"
)

func TestEachUserSeesOnlyTheLessonsOfTheirOwnKeys(t *testing.T) {
	s := newPageSite(t)
	for _, c := range []struct {
		user        string
		see, notSee []string
	}{
		{"alice", []string{aliceRow, "alice&#39;s app", "<svg"}, []string{bobRow, nobodysRow, liveRates, "bob&#39;s app"}},
		{"bob", []string{bobRow, "bob&#39;s app"}, []string{aliceRow, nobodysRow, liveRates, "alice&#39;s app"}},
	} {
		page := s.page(c.user)
		for _, want := range c.see {
			if !strings.Contains(page, want) {
				t.Errorf("%s's page lacks %q:\n%s", c.user, want, page)
			}
		}
		for _, not := range c.notSee {
			if strings.Contains(page, not) {
				t.Errorf("%s's page shows %q, which is not theirs:\n%s", c.user, not, page)
			}
		}
	}
}

func TestAUserWithoutAKeySeesHowToGetOneAndNoFigures(t *testing.T) {
	page := newPageSite(t).page("carol")
	if !strings.Contains(page, "You have no Enricher API key yet") || !strings.Contains(page, "jetfleet enricher key --user carol@example.com NAME") {
		t.Errorf("carol's page does not say how to get a key:\n%s", page)
	}
	for _, not := range []string{aliceRow, bobRow, nobodysRow, liveRates, "<svg"} {
		if strings.Contains(page, not) {
			t.Errorf("carol's page shows %q:\n%s", not, page)
		}
	}
}

func TestAnOperatorSeesEveryLessonAndTheStreamRates(t *testing.T) {
	page := newPageSite(t).page("olga")
	for _, want := range []string{aliceRow, bobRow, nobodysRow, liveRates, "<svg"} {
		if !strings.Contains(page, want) {
			t.Errorf("operator's page lacks %q:\n%s", want, page)
		}
	}
}

// A key issued for an account stamps the events it sends with the
// account, which is how their lessons reach that account's dashboard; a
// key without an owner stamps nothing, and no request header can.
func TestIngestStampsEventsWithTheKeysOwner(t *testing.T) {
	js, srv, ownerless := setup(t)
	ctx := testenv.Context(t, 10*time.Second)
	keys, err := apikeys.OpenEnricher(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	alices, _, err := keys.Issue(ctx, apikeys.NewKey{Owner: "alice", Name: "alice's app"})
	if err != nil {
		t.Fatal(err)
	}
	send := func(key string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/enricher/v1/events/lesson", strings.NewReader(`{"user_uuid":"u1","language":"es"}`))
		req.Header.Set(enricher.APIKeyHeader, key)
		req.Header.Set(subjects.EnricherOwnerHeader, "mallory")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post: %d", resp.StatusCode)
		}
	}
	send(alices)
	send(ownerless)
	st, err := js.Stream(ctx, subjects.EnricherPartitionStream(subjects.EnricherPartitionOf("u1")))
	if err != nil {
		t.Fatal(err)
	}
	var owners []string
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		owners = append(owners, m.Header.Get(subjects.EnricherOwnerHeader))
	}
	if owners[0] != "alice" || owners[1] != "" {
		t.Errorf("INPUT owner headers %q, want alice's key stamped alice and the ownerless key nothing", owners)
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
	keys, err := apikeys.OpenEnricher(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string) string {
		k, _, err := keys.Issue(ctx, apikeys.NewKey{Name: name})
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
