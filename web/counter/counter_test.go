package counter_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/workers/counter"
)

// The acceptance test of issue 3: posting N events (single and batch
// requests, some repeated under idempotency keys, some invalid) gives exactly
// the right COUNT, SUM and AVG per type and range, also when the worker is
// restarted in the middle of the ingest.
func TestPostedEventsGiveExactCountSumAvgAcrossWorkerRestart(t *testing.T) {
	e := newEnv(t)
	key := e.key("acme", 0)
	stop := e.worker(counter.Config{WorkerID: "w1"})

	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour) // events spread over 3 hours
	type want struct{ count, sum int64 }
	expect := map[string]*want{} // by video|type|hour
	var mu sync.Mutex
	record := func(video, typ string, v int64, ts time.Time) {
		mu.Lock()
		defer mu.Unlock()
		k := fmt.Sprintf("%s|%s|%d", video, typ, ts.Sub(base)/time.Hour)
		if expect[k] == nil {
			expect[k] = &want{}
		}
		expect[k].count++
		expect[k].sum += v
	}
	videos := []string{"hot", "warm", "cold-1", "cold-2"}
	types := []string{"VIEW", "LIKE", "SHARE"}
	rng := rand.New(rand.NewPCG(1, 2))
	randomEvent := func(i int) (map[string]any, string, string, int64, time.Time) {
		video := videos[rng.IntN(len(videos))]
		if rng.IntN(2) == 0 {
			video = "hot"
		}
		typ := types[rng.IntN(len(types))]
		v := int64(rng.IntN(100))
		ts := base.Add(time.Duration(rng.IntN(3*3600)) * time.Second)
		return ev(video, typ, v, ts, ""), video, typ, v, ts
	}

	const rounds = 40
	var crash atomic.Bool
	var crashed atomic.Bool
	for round := range rounds {
		switch round {
		case rounds / 2:
			// Restart mid-ingest: the first worker stops, a second one takes
			// every partition over from the ClickHouse watermarks.
			stop()
			e.worker(counter.Config{WorkerID: "w2", AfterFlush: func() error {
				if crash.Load() {
					crashed.Store(true)
					return errors.New("killed between flush and ack")
				}
				return nil
			}})
		case 3 * rounds / 4:
			// The second worker dies between a flush and its acks; a third
			// takes over once the leases expire.
			crash.Store(true)
			testenv.Eventually(t, 10*time.Second, "the second worker crashes", crashed.Load)
			e.worker(counter.Config{WorkerID: "w3"})
		}
		// A batch of 50 with 3 invalid items.
		var batch []map[string]any
		for i := range 50 {
			m, video, typ, v, ts := randomEvent(i)
			switch i {
			case 7:
				m["type"] = "DISLIKE"
			case 19:
				delete(m, "video_id")
			case 33:
				m["timestamp"] = time.Now().Add(time.Hour).Format(time.RFC3339)
			default:
				record(video, typ, v, ts)
			}
			batch = append(batch, m)
		}
		status, out := e.post(key, "/api/counter/v1/batch", map[string]any{"events": batch})
		if status != http.StatusAccepted || num(out["accepted"]) != 47 || len(out["rejected"].([]any)) != 3 {
			t.Fatalf("batch: %d %v", status, out)
		}
		// Five single events, two of them keyed and each sent twice.
		for i := range 5 {
			m, video, typ, v, ts := randomEvent(i)
			keyed := i < 2
			if keyed {
				m["idempotency_key"] = fmt.Sprintf("r%d-e%d", round, i)
			}
			record(video, typ, v, ts)
			for range 1 + map[bool]int{true: 1}[keyed] {
				if status, out := e.post(key, "/api/counter/v1/events", m); status != http.StatusAccepted {
					t.Fatalf("single: %d %v", status, out)
				}
			}
		}
		// An invalid single event is refused with a reason.
		if status, out := e.post(key, "/api/counter/v1/events", `{"video_id":"hot","type":"VIEW","value":"lots"}`); status != http.StatusBadRequest || out["error"] == "" {
			t.Fatalf("invalid single: %d %v", status, out)
		}
	}

	end := base.Add(3 * time.Hour)
	check := func(video, typ string, from, to int) {
		t.Helper()
		var w want
		for h := from; h < to; h++ {
			if x := expect[fmt.Sprintf("%s|%s|%d", video, typ, h)]; x != nil {
				w.count += x.count
				w.sum += x.sum
			}
		}
		start, stop := base.Add(time.Duration(from)*time.Hour), base.Add(time.Duration(to)*time.Hour)
		for _, fn := range []string{"COUNT", "SUM", "AVG"} {
			out := e.stats(key, video, typ, fn, start, stop)
			var wantV float64
			switch fn {
			case "COUNT":
				wantV = float64(w.count)
			case "SUM":
				wantV = float64(w.sum)
			case "AVG":
				if w.count > 0 {
					wantV = float64(int64(float64(w.sum)/float64(w.count)*1e6+0.5)) / 1e6
				}
			}
			if got := num(out["value"]); got != wantV {
				t.Errorf("%s %s %s over hours [%d,%d): %v, want %v", fn, video, typ, from, to, got, wantV)
			}
		}
	}
	// Wait until the whole ingest is visible, then compare every figure.
	lastAccepted := time.Now()
	testenv.Eventually(t, 30*time.Second, "every accepted event is counted", func() bool {
		for _, video := range videos {
			for _, typ := range types {
				var n int64
				for h := range 3 {
					if x := expect[fmt.Sprintf("%s|%s|%d", video, typ, h)]; x != nil {
						n += x.count
					}
				}
				if num(e.stats(key, video, typ, "COUNT", base, end)["value"]) < float64(n) {
					return false
				}
			}
		}
		return true
	})
	for _, video := range videos {
		for _, typ := range types {
			check(video, typ, 0, 3)
			check(video, typ, 1, 2)
			check(video, typ, 0, 2)
		}
	}
	testenv.Eventually(t, 10*time.Second, "reads state a freshness past the last accepted event", func() bool {
		f, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(e.stats(key, "hot", "VIEW", "COUNT", base, end)["fresh_until"]))
		return f.After(lastAccepted)
	})
}

func TestRepeatedIdempotencyKeyCountsOnce(t *testing.T) {
	e := newEnv(t)
	key := e.key("acme", 0)
	e.worker(counter.Config{})
	now := time.Now().UTC()
	for i := range 3 {
		status, out := e.post(key, "/api/counter/v1/events", ev("v1", "LIKE", 5, now, "like-1"))
		if status != http.StatusAccepted {
			t.Fatalf("attempt %d: %d %v", i, status, out)
		}
		if dup := out["duplicates"] != nil; dup != (i > 0) {
			t.Errorf("attempt %d reported duplicate=%v", i, dup)
		}
	}
	// Same key inside a batch, and another tenant's identical key counts.
	status, out := e.post(key, "/api/counter/v1/batch", map[string]any{"events": []any{
		ev("v1", "LIKE", 5, now, "like-1"), ev("v1", "LIKE", 7, now, "like-2"), ev("v1", "LIKE", 7, now, "like-2")}})
	if status != http.StatusAccepted || len(out["duplicates"].([]any)) != 2 {
		t.Fatalf("batch: %d %v", status, out)
	}
	other := e.key("globex", 0)
	e.post(other, "/api/counter/v1/events", ev("v1", "LIKE", 5, now, "like-1"))

	testenv.Eventually(t, 15*time.Second, "two likes counted", func() bool {
		return num(e.stats(key, "v1", "LIKE", "COUNT", now.Add(-time.Hour), now.Add(time.Hour))["value"]) == 2
	})
	if got := num(e.stats(key, "v1", "LIKE", "SUM", now.Add(-time.Hour), now.Add(time.Hour))["value"]); got != 12 {
		t.Errorf("sum = %v, want 12", got)
	}
	testenv.Eventually(t, 15*time.Second, "the other tenant's like counted for it", func() bool {
		return num(e.stats(other, "v1", "LIKE", "COUNT", now.Add(-time.Hour), now.Add(time.Hour))["value"]) == 1
	})
}

func TestBadRequestsAreRefusedWithAReasonAndAStableCode(t *testing.T) {
	e := newEnv(t)
	key := e.key("acme", 0)
	big := make([]any, 10_001)
	for i := range big {
		big[i] = map[string]any{"video_id": "v"}
	}
	cases := []struct {
		name, key, path string
		body            any
		status          int
		code            string
		reason          string
	}{
		{"no key", "", "/api/counter/v1/events", `{"video_id":"v"}`, 401, "unauthorized", "missing API key"},
		{"unknown key", "jfc_nope", "/api/counter/v1/events", `{"video_id":"v"}`, 401, "unauthorized", "unknown"},
		{"malformed json", key, "/api/counter/v1/events", `{"video_id":`, 400, "bad_request", "malformed JSON"},
		{"unknown type", key, "/api/counter/v1/events", `{"video_id":"v","type":"DISLIKE"}`, 400, "bad_request", "type"},
		{"missing id", key, "/api/counter/v1/events", `{"type":"VIEW"}`, 400, "bad_request", "video_id: required"},
		{"too old", key, "/api/counter/v1/events", `{"video_id":"v","timestamp":"2001-01-01T00:00:00Z"}`, 400, "bad_request", "retention"},
		{"batch too large", key, "/api/counter/v1/batch", map[string]any{"events": big}, 413, "too_large", "at most 10000"},
		{"all invalid", key, "/api/counter/v1/batch", `{"events":[{"type":"X"},3]}`, 400, "bad_request", "no valid event"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out := e.post(c.key, c.path, c.body)
			if status != c.status || out["code"] != c.code || !strings.Contains(fmt.Sprint(out["error"]), c.reason) {
				t.Errorf("%d %v, want %d with code %q and %q", status, out, c.status, c.code, c.reason)
			}
		})
	}
	if _, out := e.post(key, "/api/counter/v1/batch", `{"events":[{"type":"X"},3]}`); len(out["rejected"].([]any)) != 2 {
		t.Errorf("a batch with no valid event lists %v as rejected, want both items", out["rejected"])
	}
	status, out := e.get(key, "/api/counter/v1/videos/v/stats", url.Values{"function": {"MEDIAN"}})
	if status != 400 || out["code"] != "bad_request" || !strings.Contains(fmt.Sprint(out["error"]), "function") {
		t.Errorf("bad function: %d %v", status, out)
	}
}

func TestRateLimitPerKeyAnswers429(t *testing.T) {
	e := newEnv(t)
	key := e.key("acme", 1) // 1 event/s, burst MaxBatch
	big := make([]any, 10_000)
	for i := range big {
		big[i] = map[string]any{"video_id": fmt.Sprintf("v%d", i%10)}
	}
	if status, out := e.post(key, "/api/counter/v1/batch", map[string]any{"events": big}); status != http.StatusAccepted {
		t.Fatalf("first batch: %d %v", status, out)
	}
	status, out := e.post(key, "/api/counter/v1/batch", map[string]any{"events": big})
	if status != http.StatusTooManyRequests || out["code"] != "rate_limited" || !strings.Contains(fmt.Sprint(out["error"]), "rate limit") {
		t.Errorf("second batch: %d %v, want 429 rate_limited", status, out)
	}
	if status, _ := e.post(e.key("acme", 1), "/api/counter/v1/events", `{"video_id":"v"}`); status != http.StatusAccepted {
		t.Errorf("another key of the tenant is limited too: %d", status)
	}
}
