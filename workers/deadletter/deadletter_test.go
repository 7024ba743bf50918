package deadletter_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/deadletter"
)

// An operator's round trip: a handler rejects messages, the operator lists
// and inspects them, fixes the handler, replays them, and they are handled
// once each.
func TestListShowReplayRoundTrip(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 3}); err != nil {
		t.Fatal(err)
	}

	var fixed atomic.Bool
	var mu sync.Mutex
	handled := map[string]int{}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	c := consume.New(js, consume.Config{Role: "billing", Stream: "ORDERS", Consumer: "billing", FetchWait: 100 * time.Millisecond},
		func(ctx context.Context, m jetstream.Msg) error {
			if !fixed.Load() {
				return consume.Permanentf("unknown currency in %s", m.Subject())
			}
			mu.Lock()
			handled[string(m.Data())]++
			mu.Unlock()
			return nil
		}, consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	go c.Run(runCtx)

	for _, p := range []struct{ subj, data string }{{"orders.eu", "A"}, {"orders.us", "B"}, {"orders.eu", "C"}} {
		if _, err := js.Publish(ctx, p.subj, []byte(p.data), jetstream.WithMsgID("order-"+p.data)); err != nil {
			t.Fatal(err)
		}
	}
	var entries []deadletter.Entry
	testenv.Eventually(t, 10*time.Second, "three dead letters", func() bool {
		var err error
		entries, err = deadletter.List(ctx, js, "ORDERS", 0)
		return err == nil && len(entries) == 3
	})
	if other, _ := deadletter.List(ctx, js, "ELSEWHERE", 0); len(other) != 0 {
		t.Fatalf("filter by stream leaked %d entries", len(other))
	}
	if limited, _ := deadletter.List(ctx, js, "", 2); len(limited) != 2 {
		t.Fatalf("limit 2 gave %d entries", len(limited))
	}
	var first deadletter.Entry
	for _, e := range entries {
		if e.OriginSeq == 1 {
			first = e
		}
	}
	if first.Origin != "orders.eu" || first.Stream != "ORDERS" || first.Consumer != "billing" ||
		first.Error != "unknown currency in orders.eu" || string(first.Data) != "A" || first.Deliveries != 1 || first.Time.IsZero() {
		t.Fatalf("entry fields wrong: %+v", first)
	}
	shown, err := deadletter.Get(ctx, js, first.Seq)
	if err != nil || string(shown.Data) != "A" {
		t.Fatalf("Get(%d) = %+v, %v", first.Seq, shown, err)
	}

	fixed.Store(true)
	if err := deadletter.Replay(ctx, js, first.Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := deadletter.Get(ctx, js, first.Seq); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("replayed entry still in DLQ: %v", err)
	}
	n, err := deadletter.ReplayAll(ctx, js, "ORDERS", "orders.us")
	if err != nil || n != 1 {
		t.Fatalf("ReplayAll(orders.us) = %d, %v; want 1", n, err)
	}
	n, err = deadletter.ReplayAll(ctx, js, "", "")
	if err != nil || n != 1 {
		t.Fatalf("ReplayAll() = %d, %v; want the last 1", n, err)
	}
	testenv.Eventually(t, 10*time.Second, "all three handled after replay", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	for id, c := range handled {
		if c != 1 {
			t.Errorf("%s handled %d times after replay", id, c)
		}
	}
	if left, _ := deadletter.List(ctx, js, "", 0); len(left) != 0 {
		t.Fatalf("%d entries left in DLQ after replaying all", len(left))
	}
}
