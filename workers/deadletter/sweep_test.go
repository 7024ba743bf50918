package deadletter_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/deadletter"
)

// A worker that takes a message and dies, on every delivery, makes the
// server give up silently; the sweeper turns that into one DLQ entry and
// frees the work queue.
func TestMessageNobodyFinishesIsSweptToDLQ(t *testing.T) {
	nc, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateConsumer(ctx, "JOBS", jetstream.ConsumerConfig{
		Durable: "w", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 200 * time.Millisecond, MaxDeliver: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	sweepCtx, stop := context.WithCancel(ctx)
	defer stop()
	go deadletter.Sweep(sweepCtx, nc, js, slog.New(slog.NewTextHandler(io.Discard, nil)))

	if _, err := js.Publish(ctx, "jobs.crash", []byte("payload"), jetstream.WithMsgID("job-1")); err != nil {
		t.Fatal(err)
	}
	// Two deliveries, neither acknowledged: the "worker" dies each time.
	for i := range 2 {
		if _, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	var entries []deadletter.Entry
	testenv.Eventually(t, 10*time.Second, "the abandoned message is in the DLQ", func() bool {
		// Other workers keep pulling; the server notices the exhausted
		// message when it would otherwise redeliver it.
		if m, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond)); err == nil {
			t.Fatalf("delivered a third time past MaxDeliver: %s", m.Subject())
		}
		entries, _ = deadletter.List(ctx, js, "JOBS", 0)
		return len(entries) == 1
	})
	e := entries[0]
	if e.Origin != "jobs.crash" || e.Consumer != "w" || e.Deliveries != 2 || string(e.Data) != "payload" || !strings.Contains(e.Error, "no outcome after 2 deliveries") {
		t.Fatalf("entry %+v", e)
	}
	testenv.Eventually(t, 5*time.Second, "the work queue is empty", func() bool {
		s, _ := js.Stream(ctx, "JOBS")
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
}
