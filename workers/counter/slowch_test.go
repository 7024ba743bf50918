package counter_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"jetfleet/analytics"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/counter"
)

// With ClickHouse answering every packet 600 ms late (an insert then takes
// well over a second, as under CPU pressure), the worker keeps every
// partition lease across many flushes — renewals do not wait for flushes —
// and counts every event exactly once.
func TestSlowClickHouseNeitherCostsLeasesNorCounts(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 90*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, db := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	opts, err := clickhouse.ParseDSN(ch.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	opts.Addr = []string{testenv.LatencyProxy(t, opts.Addr[0], 600*time.Millisecond)}
	slow, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })

	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	wctx, stop := context.WithCancel(ctx)
	w := counter.New(js, slow, counter.Config{WorkerID: "slow", FlushEvery: 100 * time.Millisecond}, log)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		stop()
		<-done
	}()

	// Publish to 32 videos (most partitions) until the worker has flushed
	// 8 times: the old worker lost its leases within the first few.
	m := minute(0)
	sent := 0
	for w.Stats.Flushes.Load() < 8 {
		if ctx.Err() != nil {
			t.Fatalf("only %d flushes; log:\n%s", w.Stats.Flushes.Load(), logs.String())
		}
		for v := range 32 {
			publish(t, js, subjects.CounterRow{Tenant: "acme", VideoID: fmt.Sprintf("v%d", v), Type: subjects.CounterView, Minute: m, Count: 1, Sum: 2})
		}
		sent++
		time.Sleep(50 * time.Millisecond) // pacing the producer, not waiting for state
	}
	var last uint64
	testenv.Eventually(t, 60*time.Second, fmt.Sprintf("all %d rounds counted", sent), func() bool {
		var events uint64
		for v := range 32 {
			events += totals(t, conn, "acme", fmt.Sprintf("v%d", v), subjects.CounterView).Events
		}
		last = events
		return events == uint64(32*sent)
	})
	for v := range 32 {
		if got := totals(t, conn, "acme", fmt.Sprintf("v%d", v), subjects.CounterView); got.Events != uint64(sent) || got.Total != int64(2*sent) {
			t.Errorf("v%d: %+v, want %d events summing to %d (all videos: %d events)", v, got, sent, 2*sent, last)
		}
	}
	for _, bad := range []string{"lease too old", "lost partition lease", "flush failed"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("the worker logged %q under a slow ClickHouse; log:\n%s", bad, logs.String())
			break
		}
	}
	t.Logf("%d flushes, %d rounds", w.Stats.Flushes.Load(), sent)
}
