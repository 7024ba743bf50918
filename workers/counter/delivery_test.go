package counter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/counter"
)

// A pull left waiting on a partition's consumer from before its owner reset
// it (a previous owner's, one whose server died) takes the first delivery
// after the reset; a consumer leader resuming from its state before the
// reset looks the same to the owner: numbering goes on from elsewhere. The
// owner must not take its first delivery (here consumer sequence 2) as the
// start: the one it missed would be skipped for good, its redelivery below
// the watermark by then.
func TestFirstDeliveryAfterResetTakenElsewhereIsReadAgain(t *testing.T) {
	_, js, conn := setup(t)
	stolen := strayPull(t, js, "v1")
	startOwner(t, js, conn)
	for range 20 {
		publish(t, js, subjects.CounterRow{Tenant: "acme", VideoID: "v1", Type: subjects.CounterView, Minute: minute(0), Count: 1, Sum: 1})
	}
	if md := <-stolen; md == nil || md.Sequence.Consumer != 1 {
		t.Fatalf("the stray pull got %+v, not the first delivery after the reset; the test proves nothing", md)
	}
	// Well before AckWait (15 s), though no redelivery would help here.
	countsTo(t, conn, 20)
}

// The last delivery of an idle partition taken elsewhere leaves no later
// delivery whose sequence would show the hole; the owner finds out from its
// consumer's delivered count instead of waiting for AckWait.
func TestLastDeliveryTakenElsewhereIsReadBeforeAckWait(t *testing.T) {
	_, js, conn := setup(t)
	stolen := strayPull(t, js, "v1")
	startOwner(t, js, conn)
	publish(t, js, subjects.CounterRow{Tenant: "acme", VideoID: "v1", Type: subjects.CounterView, Minute: minute(0), Count: 3, Sum: 3})
	if md := <-stolen; md == nil {
		t.Fatal("the stray pull got nothing; the test proves nothing")
	}
	countsTo(t, conn, 3) // well before AckWait (15 s)
}

// countsTo waits 8 s for want views of v1 to be counted, and checks that
// no more were.
func countsTo(t *testing.T, conn driver.Conn, want uint64) {
	t.Helper()
	var got uint64
	defer func() { t.Logf("counted %d of %d", got, want) }() // also when the wait fails
	testenv.Eventually(t, 8*time.Second, fmt.Sprintf("%d views counted", want), func() bool {
		got = totals(t, conn, "acme", "v1", subjects.CounterView).Events
		return got >= want
	})
	if got = totals(t, conn, "acme", "v1", subjects.CounterView).Events; got != want {
		t.Errorf("counted %d, want %d", got, want)
	}
}

// strayPull leaves a one-message pull waiting on video's partition consumer
// and returns where the metadata of what it gets arrives (nil: nothing).
// It is queued before any owner's pull, so it gets the next delivery.
func strayPull(t *testing.T, js jetstream.JetStream, video string) <-chan *jetstream.MsgMetadata {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	cons, err := js.Consumer(ctx, subjects.CounterStream, subjects.CounterConsumer(subjects.CounterPartition(video)))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *jetstream.MsgMetadata, 1)
	go func() {
		var md *jetstream.MsgMetadata
		defer func() { got <- md }()
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(20*time.Second))
		if err != nil {
			return
		}
		for msg := range b.Messages() {
			md, _ = msg.Metadata() // never acknowledged
		}
	}()
	testenv.Eventually(t, 5*time.Second, "the stray pull waits", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumWaiting >= 1
	})
	return got
}

// startOwner runs a worker until the test ends and waits until it owns
// every partition (each taken with a consumer reset).
func startOwner(t *testing.T, js jetstream.JetStream, conn driver.Conn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := counter.New(js, conn, counter.Config{FlushEvery: 100 * time.Millisecond}, quiet())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	owners, err := js.KeyValue(ctx, subjects.CounterOwnersBucket)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the worker owns every partition", func() bool {
		return countOwned(ctx, owners, w.ID()) == subjects.CounterPartitions
	})
}
