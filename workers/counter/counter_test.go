package counter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/counter"
)

func TestWorkerCountsPublishedBatches(t *testing.T) {
	_, js, conn := setup(t)
	ctx, cancel := context.WithCancel(testenv.Context(t, 30*time.Second))
	w := counter.New(js, conn, counter.Config{FlushEvery: 100 * time.Millisecond}, quiet())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	m := minute(0)
	for i := range 50 {
		publish(t, js,
			subjects.CounterRow{Tenant: "acme", VideoID: "v1", Type: subjects.CounterView, Minute: m, Count: 2, Sum: 10},
			subjects.CounterRow{Tenant: "acme", VideoID: fmt.Sprintf("other-%d", i), Type: subjects.CounterLike, Minute: m, Count: 1, Sum: 1},
		)
	}
	testenv.Eventually(t, 15*time.Second, "100 views of v1 counted", func() bool {
		return totals(t, conn, "acme", "v1", subjects.CounterView).Events == 100
	})
	if got := totals(t, conn, "acme", "v1", subjects.CounterView); got.Total != 500 {
		t.Errorf("sum = %d, want 500", got.Total)
	}
	if got := totals(t, conn, "other", "v1", subjects.CounterView); got.Events != 0 {
		t.Errorf("another tenant sees %d events", got.Events)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A worker killed after its insert reached ClickHouse but before it acked
// must not make the next owner count the same messages again.
func TestCrashBetweenFlushAndAckCountsExactlyOnce(t *testing.T) {
	_, js, conn := setup(t)
	ctx := testenv.Context(t, 60*time.Second)
	m := minute(0)
	const batches = 40
	for range batches {
		publish(t, js, subjects.CounterRow{Tenant: "acme", VideoID: "hot", Type: subjects.CounterView, Minute: m, Count: 3, Sum: 6})
	}

	// The first worker crashes right after its first flush: nothing acked,
	// leases left to expire.
	var flushed atomic.Bool
	crashCtx, crashCancel := context.WithCancel(ctx)
	defer crashCancel()
	first := counter.New(js, conn, counter.Config{FlushEvery: 100 * time.Millisecond, AfterFlush: func() error {
		if totals(t, conn, "acme", "hot", subjects.CounterView).Events < 3*batches {
			return nil // not everything flushed yet: keep going (and acking)
		}
		flushed.Store(true)
		return errors.New("killed between flush and ack")
	}}, quiet())
	if err := first.Run(crashCtx); err == nil {
		t.Fatal("first worker did not crash")
	}
	if !flushed.Load() {
		t.Fatal("first worker never flushed")
	}
	before := totals(t, conn, "acme", "hot", subjects.CounterView)
	if before.Events != 3*batches {
		t.Fatalf("first flush holds %d events, want all %d", before.Events, 3*batches)
	}
	cons, _ := js.Consumer(ctx, subjects.CounterStream, subjects.CounterConsumer(subjects.CounterPartition("hot")))
	info, _ := cons.Info(ctx)
	if last, _ := js.Stream(ctx, subjects.CounterStream); last != nil {
		if si, _ := last.Info(ctx); info.AckFloor.Stream >= si.State.LastSeq {
			t.Fatalf("ack floor %d: the crash happened after the last ack", info.AckFloor.Stream)
		}
	}

	// More events arrive; a second worker takes over once the leases expire.
	for range 10 {
		publish(t, js, subjects.CounterRow{Tenant: "acme", VideoID: "hot", Type: subjects.CounterView, Minute: m, Count: 1, Sum: 1})
	}
	runCtx, cancel := context.WithCancel(ctx)
	second := counter.New(js, conn, counter.Config{FlushEvery: 100 * time.Millisecond}, quiet())
	done := make(chan error, 1)
	go func() { done <- second.Run(runCtx) }()
	testenv.Eventually(t, 20*time.Second, "the second worker counts the 10 new events", func() bool {
		return totals(t, conn, "acme", "hot", subjects.CounterView).Events >= 3*batches+10
	})
	cancel()
	<-done
	got := totals(t, conn, "acme", "hot", subjects.CounterView)
	if got.Events != 3*batches+10 || got.Total != 6*batches+10 {
		t.Errorf("after the crash: count %d sum %d, want exactly %d and %d", got.Events, got.Total, 3*batches+10, 6*batches+10)
	}
	if second.Stats.Events.Load() != 10 || second.Stats.Skipped.Load() != 0 {
		t.Errorf("second worker counted %d events and skipped %d messages; want only the 10 new ones, none re-read",
			second.Stats.Events.Load(), second.Stats.Skipped.Load())
	}
}

func TestBadBatchIsDeadLetteredAndPartitionKeepsFlowing(t *testing.T) {
	_, js, conn := setup(t)
	ctx, cancel := context.WithCancel(testenv.Context(t, 30*time.Second))
	p := subjects.CounterPartition("v1")
	if _, err := js.Publish(ctx, subjects.CounterSubject(p), []byte(`{"rows":[{"t":"acme","v":"v1","y":"BOGUS","m":60,"c":1}]}`)); err != nil {
		t.Fatal(err)
	}
	publish(t, js, subjects.CounterRow{Tenant: "acme", VideoID: "v1", Type: subjects.CounterView, Minute: minute(0), Count: 1, Sum: 1})
	w := counter.New(js, conn, counter.Config{FlushEvery: 100 * time.Millisecond}, quiet())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	testenv.Eventually(t, 15*time.Second, "the valid batch behind the bad one is counted", func() bool {
		return totals(t, conn, "acme", "v1", subjects.CounterView).Events == 1
	})
	dlq, _ := js.Stream(ctx, subjects.DLQStream)
	msg, err := dlq.GetLastMsgForSubject(ctx, subjects.DLQ(subjects.CounterStream, subjects.CounterConsumer(p)))
	if err != nil {
		t.Fatalf("bad batch not dead-lettered: %v", err)
	}
	if reason := msg.Header.Get(subjects.HeaderDLQError); !strings.Contains(reason, "BOGUS") {
		t.Errorf("dead letter reason %q does not name the bad type", reason)
	}
	cancel()
	<-done
}

func TestTwoWorkersSplitPartitionsWithOneOwnerEach(t *testing.T) {
	_, js, conn := setup(t)
	ctx, cancel := context.WithCancel(testenv.Context(t, 30*time.Second))
	a := counter.New(js, conn, counter.Config{WorkerID: "a", FlushEvery: 100 * time.Millisecond}, quiet())
	b := counter.New(js, conn, counter.Config{WorkerID: "b", FlushEvery: 100 * time.Millisecond}, quiet())
	done := make(chan error, 2)
	go func() { done <- a.Run(ctx) }()
	owners, _ := js.KeyValue(ctx, subjects.CounterOwnersBucket)
	testenv.EventuallyState(t, 10*time.Second, "worker a owns every partition", func() (bool, any) {
		seen := countOwned(ctx, owners, "a")
		return seen == subjects.CounterPartitions, seen
	})
	go func() { done <- b.Run(ctx) }()
	testenv.Eventually(t, 15*time.Second, "the partitions are split 8/8", func() bool {
		return countOwned(ctx, owners, "a") == subjects.CounterPartitions/2 && countOwned(ctx, owners, "b") == subjects.CounterPartitions/2
	})
	for i := range 200 {
		publish(t, js, subjects.CounterRow{Tenant: "acme", VideoID: fmt.Sprintf("v%d", i%20), Type: subjects.CounterView, Minute: minute(0), Count: 1, Sum: 1})
	}
	testenv.Eventually(t, 15*time.Second, "all 200 events counted", func() bool {
		var n uint64
		for i := range 20 {
			n += totals(t, conn, "acme", fmt.Sprintf("v%d", i), subjects.CounterView).Events
		}
		return n == 200
	})
	if a.Stats.Events.Load()+b.Stats.Events.Load() != 200 || a.Stats.Events.Load() == 0 || b.Stats.Events.Load() == 0 {
		t.Errorf("worker a counted %d, b %d: want 200 in total, shared", a.Stats.Events.Load(), b.Stats.Events.Load())
	}
	cancel()
	<-done
	<-done
}

func countOwned(ctx context.Context, kv jetstream.KeyValue, id string) int {
	n := 0
	for p := range subjects.CounterPartitions {
		if e, err := kv.Get(ctx, subjects.CounterLeaseKey(p)); err == nil && string(e.Value()) == id {
			n++
		}
	}
	return n
}

func TestRebuildRecomputesRollupsFromRawEvents(t *testing.T) {
	_, js, conn := setup(t)
	ctx := testenv.Context(t, 60*time.Second)
	old, recent := minute(3*time.Hour), minute(0)
	for range 20 {
		publish(t, js,
			subjects.CounterRow{Tenant: "acme", VideoID: "v1", Type: subjects.CounterView, Minute: old, Count: 1, Sum: 2},
			subjects.CounterRow{Tenant: "acme", VideoID: "v1", Type: subjects.CounterView, Minute: recent, Count: 2, Sum: 4})
	}
	runCtx, cancel := context.WithCancel(ctx)
	w := counter.New(js, conn, counter.Config{FlushEvery: 100 * time.Millisecond}, quiet())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	testenv.Eventually(t, 15*time.Second, "60 views counted", func() bool {
		return totals(t, conn, "acme", "v1", subjects.CounterView).Events == 60
	})
	cancel()
	<-done
	owners, _ := js.KeyValue(ctx, subjects.CounterOwnersBucket)
	testenv.Eventually(t, 2*subjects.CounterLeaseTTL, "the stopped worker's leases are gone", func() bool { return countOwned(ctx, owners, w.ID()) == 0 })

	if _, err := counter.Rebuild(ctx, js, conn, time.Now().Add(-time.Hour), quiet(), nil); err != nil {
		t.Fatalf("rebuild of intact rollups: %v", err)
	}
	if got := totals(t, conn, "acme", "v1", subjects.CounterView); got.Events != 60 || got.Total != 120 {
		t.Fatalf("after rebuilding intact rollups: %+v, want 60 events summing to 120", got)
	}
	// Damage the recent rollups, then rebuild them from the stream.
	if err := counterdbFlushJunk(ctx, conn, recent); err != nil {
		t.Fatal(err)
	}
	var seen []counter.RebuildProgress
	rep, err := counter.Rebuild(ctx, js, conn, time.Now().Add(-time.Hour), quiet(), func(p counter.RebuildProgress) { seen = append(seen, p) })
	if err != nil {
		t.Fatal(err)
	}
	// Progress reaches the end of both phases: every batch read (the 20
	// recent batches and the older ones of the same publishes), every row
	// written.
	last := map[string]counter.RebuildProgress{}
	for _, p := range seen {
		if p.Done > p.Total {
			t.Errorf("progress %+v: done past total", p)
		}
		last[p.Phase] = p
	}
	if r := last[counter.RebuildRead]; r.Done != rep.Messages || r.Done == 0 {
		t.Errorf("read progress ended at %+v, want %d batches", r, rep.Messages)
	}
	if w := last[counter.RebuildWrite]; w.Done != rep.Rows || w.Total != rep.Rows || rep.Rows == 0 {
		t.Errorf("write progress ended at %+v, want %d rows", w, rep.Rows)
	}
	if got := totals(t, conn, "acme", "v1", subjects.CounterView); got.Events != 60 || got.Total != 120 {
		t.Errorf("after rebuild: %+v, want 60 events summing to 120 (report %+v)", got, rep)
	}
}

func TestRebuildRefusesWhileWorkersRun(t *testing.T) {
	_, js, conn := setup(t)
	ctx, cancel := context.WithCancel(testenv.Context(t, 30*time.Second))
	w := counter.New(js, conn, counter.Config{}, quiet())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	owners, _ := js.KeyValue(ctx, subjects.CounterOwnersBucket)
	testenv.Eventually(t, 10*time.Second, "the worker owns partitions", func() bool { return countOwned(ctx, owners, w.ID()) > 0 })
	if _, err := counter.Rebuild(ctx, js, conn, time.Now(), quiet(), nil); err == nil || !strings.Contains(err.Error(), "stop the counter workers") {
		t.Errorf("rebuild with a running worker: %v", err)
	}
	cancel()
	<-done
}

// A delivery that never reaches the owner (here: taken by a stray pull,
// as when a server dies with it in flight) leaves a hole in the delivery
// sequence; the owner rewinds and counts it, without waiting for AckWait and
// without counting anything twice.
func TestLostDeliveryIsReadAgainInOrder(t *testing.T) {
	_, js, conn := setup(t)
	ctx, cancel := context.WithCancel(testenv.Context(t, 30*time.Second))
	w := counter.New(js, conn, counter.Config{FlushEvery: 100 * time.Millisecond}, quiet())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	owners, _ := js.KeyValue(ctx, subjects.CounterOwnersBucket)
	testenv.Eventually(t, 10*time.Second, "the worker owns every partition", func() bool {
		return countOwned(ctx, owners, w.ID()) == subjects.CounterPartitions
	})
	cons, _ := js.Consumer(ctx, subjects.CounterStream, subjects.CounterConsumer(subjects.CounterPartition("v1")))
	// Stray pulls wait beside the owner's; the server hands some messages
	// to them, and they are never acknowledged.
	var stolen atomic.Int32
	var thieves sync.WaitGroup
	for range 4 {
		thieves.Add(1)
		go func() {
			defer thieves.Done()
			if b, err := cons.Fetch(1, jetstream.FetchMaxWait(3*time.Second)); err == nil {
				for range b.Messages() {
					stolen.Add(1)
				}
			}
		}()
	}
	testenv.Eventually(t, 5*time.Second, "the stray pulls wait beside the owner's", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumWaiting >= 5
	})
	for range 40 {
		publish(t, js, subjects.CounterRow{Tenant: "acme", VideoID: "v1", Type: subjects.CounterView, Minute: minute(0), Count: 1, Sum: 1})
	}
	thieves.Wait()
	if stolen.Load() == 0 {
		t.Fatal("no delivery was diverted; the test proves nothing")
	}
	testenv.Eventually(t, 10*time.Second, "all 40 counted well before AckWait", func() bool {
		return totals(t, conn, "acme", "v1", subjects.CounterView).Events >= 40
	})
	if got := totals(t, conn, "acme", "v1", subjects.CounterView).Events; got != 40 {
		t.Errorf("counted %d, want 40 (%d deliveries stolen)", got, stolen.Load())
	}
	t.Logf("%d deliveries stolen", stolen.Load())
	cancel()
	<-done
}
