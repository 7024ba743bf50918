package counter_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"jetfleet/analytics/counterdb"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	wcounter "jetfleet/web/counter"
)

// Tenant "a" with key "x:k1" and tenant "a:x" with key "k1" are different
// (tenant, key) pairs: neither may be taken for a repeat of the other, for
// an event's idempotency_key as for a request's Idempotency-Key header.
func TestIdempotencyKeysOfTenantsWithTheSeparatorDoNotCollide(t *testing.T) {
	e := newEnv(t)
	first, second := e.key("a", 0), e.key("a:x", 0)
	now := time.Now().UTC()
	for i, c := range []struct{ apiKey, idem string }{{first, "x:k1"}, {second, "k1"}} {
		status, out := e.post(c.apiKey, "/api/counter/v1/events", ev("v1", "LIKE", 1, now, c.idem))
		if status != http.StatusAccepted || out["duplicates"] != nil {
			t.Errorf("event %d (key %q): %d %v, want 202 without duplicates", i, c.idem, status, out)
		}
	}
	for i, c := range []struct{ apiKey, idem string }{{first, "x:r1"}, {second, "r1"}} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/counter/v1/batch",
			bytes.NewReader([]byte(`{"events":[{"video_id":"v1"}]}`)))
		req.Header.Set(wcounter.APIKeyHeader, c.apiKey)
		req.Header.Set(wcounter.IdempotencyKeyHeader, c.idem)
		status, out := e.do(req)
		if status != http.StatusAccepted || out["request_duplicate"] != nil {
			t.Errorf("request %d (Idempotency-Key %q): %d %v, want 202, not a duplicate", i, c.idem, status, out)
		}
	}
}

// A video id is accepted on write exactly when it can be read back at
// /api/counter/v1/videos/{id}/stats (the id path-escaped): ids that the
// router would clean away ("." and ".." segments, empty segments) are
// refused with a 400 that says why.
func TestVideoIDsAreAcceptedExactlyWhenTheyCanBeReadBack(t *testing.T) {
	e := newEnv(t)
	key := e.key("acme", 0)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	readBack := func(id string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/counter/v1/videos/"+url.PathEscape(id)+"/stats", nil)
		req.Header.Set(wcounter.APIKeyHeader, key)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		got, _ := out["video_id"].(string)
		return resp.StatusCode, got
	}
	for _, id := range []string{"v1", "...", ".a", "a.", "a/b", "a%2Fb", "a?b#c", "ü", "%", "a\\b",
		".", "..", "./a", "a/.", "a/..", "../a", "a/./b", "a/../b", "a//b", "/a", "a/", "/", "//", "///", "/./", "%2F", "%2E", "%2e%2e", "./", "/.", "a/..b", "..a"} {
		status, out := e.post(key, "/api/counter/v1/events", map[string]any{"video_id": id})
		accepted := status == http.StatusAccepted
		if !accepted && (status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "video_id")) {
			t.Errorf("write %q: %d %v, want 202 or a 400 naming video_id", id, status, out)
			continue
		}
		rs, rid := readBack(id)
		roundTrips := rs == http.StatusOK && rid == id
		if accepted != roundTrips {
			t.Errorf("id %q: write %d %v, but read back answers %d with video_id %q", id, status, out, rs, rid)
		}
		if !accepted {
			t.Logf("%q refused: %v", id, out["error"])
		}
	}
}

// A body over the 8 MiB limit is answered 413, as documented, not 400.
func TestBodyOverTheLimitAnswers413(t *testing.T) {
	e := newEnv(t)
	key := e.key("acme", 0)
	body := `{"events":[{"video_id":"` + strings.Repeat("a", 9<<20) + `"}]}`
	status, out := e.post(key, "/api/counter/v1/batch", body)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(out["error"]), "larger than") {
		t.Errorf("9 MiB body: %d %v, want 413 saying the body is too large", status, out)
	}
}

// A client that sends its headers and then trickles (here: stops sending)
// its body is cut off after the body timeout with a 408, instead of holding
// a connection and a goroutine forever.
func TestSlowBodyIsCutAfterTheBodyTimeout(t *testing.T) {
	e := newEnvWith(t, envOptions{bodyTimeout: 300 * time.Millisecond})
	key := e.key("acme", 0)
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/counter/v1/batch HTTP/1.1\r\nHost: edge\r\n%s: %s\r\nContent-Length: 100000\r\n\r\n{\"events\":[", wcounter.APIKeyHeader, key)
	// The deadline only keeps a failing test from hanging; the server's
	// answer is what is checked.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(raw), "body") {
		t.Errorf("stalled body: %d %s, want 408 about the body", resp.StatusCode, raw)
	}
}

// SUM answers are exact integers in the JSON (no float64 rounding above
// 2^53), a read whose sum leaves the int64 range is refused or flagged
// instead of wrapping, and a write whose value could make stored rollups
// wrap is refused.
func TestSumIsExactOrRefusedNeverWrapped(t *testing.T) {
	e := newEnv(t)
	key := e.key("acme", 0)
	ctx := testenv.Context(t, 30*time.Second)
	m := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	rows := []counterdb.Row{
		{Tenant: "acme", VideoID: "exact", Type: subjects.CounterLike, Minute: m, Events: 1, Total: 1<<53 + 1},
		{Tenant: "acme", VideoID: "huge", Type: subjects.CounterLike, Minute: m, Events: 1, Total: math.MaxInt64 - 10},
		{Tenant: "acme", VideoID: "huge", Type: subjects.CounterLike, Minute: m.Add(time.Minute), Events: 1, Total: 20},
	}
	if err := counterdb.Flush(ctx, e.ch, "", rows, nil); err != nil {
		t.Fatal(err)
	}
	read := func(video, fn string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/counter/v1/videos/"+video+"/stats?"+url.Values{
			"type": {"LIKE"}, "function": {fn}, "start": {m.Add(-time.Hour).Format(time.RFC3339)}, "end": {m.Add(time.Hour).Format(time.RFC3339)},
			"step": {"minute"}}.Encode(), nil)
		req.Header.Set(wcounter.APIKeyHeader, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		dec.UseNumber()
		var out map[string]any
		if err := dec.Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	status, out := read("exact", "SUM")
	series, _ := out["series"].([]any)
	if status != http.StatusOK || fmt.Sprint(out["value"]) != "9007199254740993" || fmt.Sprint(out["sum"]) != "9007199254740993" ||
		len(series) != 1 || fmt.Sprint(series[0].(map[string]any)["value"]) != "9007199254740993" {
		t.Errorf("SUM of 2^53+1: %d %v, want value, sum and the point exactly 9007199254740993", status, out)
	}
	if status, out := read("huge", "SUM"); status != http.StatusUnprocessableEntity || out["code"] != "out_of_range" || !strings.Contains(fmt.Sprint(out["error"]), "64-bit") {
		t.Errorf("SUM past 2^63: %d %v, want 422 out_of_range saying the sum leaves the 64-bit range", status, out)
	}
	if status, out := read("huge", "AVG"); status != http.StatusUnprocessableEntity {
		t.Errorf("AVG over a sum past 2^63: %d %v, want 422", status, out)
	}
	status, out = read("huge", "COUNT")
	if status != http.StatusOK || fmt.Sprint(out["value"]) != "2" || out["sum"] != nil || out["sum_overflow"] != true {
		t.Errorf("COUNT beside a sum past 2^63: %d %v, want value 2, sum null, sum_overflow true", status, out)
	}

	status, out = e.post(key, "/api/counter/v1/events", map[string]any{"video_id": "v", "value": int64(2_000_000_000)})
	if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "value") {
		t.Errorf("value 2e9: %d %v, want 400 naming value", status, out)
	}
}
