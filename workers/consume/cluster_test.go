package consume_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// The distributed proof: three NATS servers, R3 streams, two workers sharing
// one durable consumer. Mid-stream the stream leader's server is stopped and
// one worker dies without acknowledging what it holds. Every published
// message is still processed.
func TestClusterLosesNothingWhenANodeAndAWorkerDie(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test takes ~10s; run without -short")
	}
	cluster := testenv.StartCluster(t, 3)
	reconnect := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}
	_, admin := testenv.Connect(t, cluster.URLs(0), reconnect...)
	ctx := testenv.Context(t, 2*time.Minute)

	testenv.WaitForJetStream(t, admin)
	if err := subjects.Provision(ctx, admin, subjects.Options{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateStream(ctx, jetstream.StreamConfig{
		Name: testStream, Subjects: []string{"work.>"}, Retention: jetstream.WorkQueuePolicy,
		Replicas: 3, Duplicates: 5 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateOrUpdateConsumer(ctx, testStream, jetstream.ConsumerConfig{
		Durable: testConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 2 * time.Second,
		MaxDeliver: -1, Replicas: 3,
	}); err != nil {
		t.Fatal(err)
	}

	got := newSeen()
	handler := func(ctx context.Context, m jetstream.Msg) error {
		got.add(string(m.Data()))
		return nil
	}
	ncA, jsA := testenv.Connect(t, cluster.URLs(1), reconnect...)
	start(t, jsA, consume.Config{Role: "a", Batch: 32, Concurrency: 8, ShutdownGrace: 100 * time.Millisecond}, handler)
	_, jsB := testenv.Connect(t, cluster.URLs(2), reconnect...)
	start(t, jsB, consume.Config{Role: "b", Batch: 32, Concurrency: 8}, handler)

	// The publisher retries each message under its id until acknowledged, as
	// producers must across a leader change; the id makes retries harmless.
	const n = 3000
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		for i := range n {
			id := fmt.Sprint(i)
			for ctx.Err() == nil {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := admin.Publish(pctx, "work.item", []byte(id), jetstream.WithMsgID(id))
				cancel()
				if err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()

	testenv.EventuallyState(t, 30*time.Second, "a third handled before the failures", func() (bool, any) { seen := got.distinct(); return seen >= n/3, seen })
	info, err := admin.Stream(ctx, testStream)
	if err != nil {
		t.Fatal(err)
	}
	leader := info.CachedInfo().Cluster.Leader
	for _, node := range cluster.Nodes {
		if node.Server.Name() == leader {
			node.Server.Shutdown()
			t.Logf("stopped stream leader %s at %d handled", leader, got.distinct())
		}
	}
	ncA.Close() // worker A dies holding whatever it fetched

	pubWG.Wait()
	testenv.EventuallyState(t, 90*time.Second, fmt.Sprintf("all %d messages handled", n), func() (bool, any) { seen := got.distinct(); return seen == n, seen })
	for i := range n {
		if got.count(fmt.Sprint(i)) == 0 {
			t.Fatalf("message %d lost", i)
		}
	}
}
