package counter_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"jetfleet/analytics/counterdb"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/counter"
)

// A repeated read is answered from the edge's cache while the video's
// partition reports no newer flush, with the fresh_until it was computed
// under; the next flush of the partition makes the edge read ClickHouse
// again. Rows written to ClickHouse behind the workers' back (not
// acknowledged events) show which answer came from where.
func TestRepeatedReadIsCachedOnlyUntilThePartitionFlushesAgain(t *testing.T) {
	e := newEnv(t)
	key := e.key("acme", 0)
	stop := e.worker(counter.Config{WorkerID: "w1"})
	now := time.Now().UTC()
	start, end := now.Add(-time.Hour), now.Add(time.Hour)
	if status, out := e.post(key, "/api/counter/v1/events", ev("v1", "VIEW", 1, now, "")); status != http.StatusAccepted {
		t.Fatalf("post: %d %v", status, out)
	}
	testenv.Eventually(t, 15*time.Second, "the event is counted", func() bool {
		return num(e.stats(key, "v1", "VIEW", "COUNT", start, end)["value"]) == 1
	})
	stop() // no more flushes: the partition's freshness stays put
	ctx := testenv.Context(t, 30*time.Second)
	kv, err := e.js.KeyValue(ctx, subjects.CounterFreshnessBucket)
	if err != nil {
		t.Fatal(err)
	}
	last, err := kv.Get(ctx, subjects.CounterFreshnessKey(subjects.CounterPartition("v1")))
	if err != nil {
		t.Fatal(err)
	}
	lastFresh, _ := time.Parse(time.RFC3339Nano, string(last.Value()))
	var first map[string]any
	testenv.Eventually(t, 10*time.Second, "the edge knows the partition's last freshness", func() bool {
		first = e.stats(key, "v1", "VIEW", "COUNT", start, end)
		f, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(first["fresh_until"]))
		return f.Equal(lastFresh)
	})
	if num(first["value"]) != 1 {
		t.Fatalf("read after the flush: %v", first)
	}

	if err := counterdb.Flush(ctx, e.ch, "", []counterdb.Row{{Tenant: "acme", VideoID: "v1", Type: subjects.CounterView,
		Minute: now.Truncate(time.Minute), Events: 5, Total: 5}}, nil); err != nil {
		t.Fatal(err)
	}
	again := e.stats(key, "v1", "VIEW", "COUNT", start, end)
	if num(again["value"]) != 1 || fmt.Sprint(again["fresh_until"]) != fmt.Sprint(first["fresh_until"]) {
		t.Errorf("repeated read without a new flush: %v, want the cached answer %v", again, first)
	}
	// Another tenant's identical read is its own answer, never the cache's.
	other := e.key("globex", 0)
	if got := num(e.stats(other, "v1", "VIEW", "COUNT", start, end)["value"]); got != 0 {
		t.Errorf("another tenant reads %v, want 0", got)
	}

	e.worker(counter.Config{WorkerID: "w2"}) // takes the partitions over and flushes
	testenv.Eventually(t, 20*time.Second, "a newer flush makes the edge read ClickHouse again", func() bool {
		out := e.stats(key, "v1", "VIEW", "COUNT", start, end)
		return num(out["value"]) == 6 && fmt.Sprint(out["fresh_until"]) != fmt.Sprint(first["fresh_until"])
	})
}
