package consume_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

const orderedStream = "PARTS"

// setupOrdered provisions the DLQ and a stream of two partitions, each with
// a pinned consumer.
func setupOrdered(t *testing.T, js jetstream.JetStream) consume.OrderedConfig {
	return setupPartitions(t, js, false)
}

// setupPartitions provisions the DLQ and two partitions, each with a pinned
// consumer: filtered consumers of one stream, or with perStream each the
// only consumer of a stream of its own.
func setupPartitions(t *testing.T, js jetstream.JetStream, perStream bool) consume.OrderedConfig {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := consume.OrderedConfig{Role: "ordered", Stream: orderedStream, Group: "g",
		Batch: 16, FetchWait: 100 * time.Millisecond, BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}
	if perStream {
		cfg.Stream = ""
		for p := range 2 {
			name := fmt.Sprintf("%s_%d", orderedStream, p)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{fmt.Sprintf("part.%d", p)}}); err != nil {
				t.Fatal(err)
			}
			cfg.Streams = append(cfg.Streams, name)
		}
	} else if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: orderedStream, Subjects: []string{"part.>"}}); err != nil {
		t.Fatal(err)
	}
	for p := range 2 {
		name, stream, filter := fmt.Sprintf("p%d", p), orderedStream, fmt.Sprintf("part.%d", p)
		if perStream {
			stream, filter = cfg.Streams[p], ""
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: 30 * time.Second, MaxDeliver: -1, PriorityPolicy: jetstream.PriorityPolicyPinned,
			PriorityGroups: []string{"g"}, PinnedTTL: 5 * time.Second,
		}); err != nil {
			t.Fatal(err)
		}
		cfg.Consumers = append(cfg.Consumers, name)
	}
	return cfg
}

// recorder collects what handlers saw, per partition, in order.
type recorder struct {
	mu   sync.Mutex
	seen map[int][]int
	by   map[int]map[string]int // partition → worker → count
}

func (r *recorder) handler(worker string, fail func(v int) error) consume.OrderedHandler {
	return func(ctx context.Context, p int, msg jetstream.Msg) ([]jetstream.PubAckFuture, error) {
		v, _ := strconv.Atoi(string(msg.Data()))
		if err := fail(v); err != nil {
			return nil, err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.seen[p] = append(r.seen[p], v)
		if r.by[p] == nil {
			r.by[p] = map[string]int{}
		}
		r.by[p][worker]++
		return nil, nil
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen[0]) + len(r.seen[1])
}

func runOrdered(t *testing.T, js jetstream.JetStream, cfg consume.OrderedConfig, h consume.OrderedHandler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := consume.NewOrdered(js, cfg, h, consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestOrderedPartitionsStayInOrderWithTwoWorkers(t *testing.T) {
	for _, perStream := range []bool{false, true} {
		t.Run(map[bool]string{false: "filtered consumers of one stream", true: "a stream per partition"}[perStream], func(t *testing.T) {
			testPartitionsInOrder(t, perStream)
		})
	}
}

func testPartitionsInOrder(t *testing.T, perStream bool) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	cfg := setupPartitions(t, js, perStream)
	r := &recorder{seen: map[int][]int{}, by: map[int]map[string]int{}}
	// A transient failure on every 7th value, first time only: the
	// partition pauses and resumes at that message.
	var failedOnce sync.Map
	fail := func(v int) error {
		if v%7 == 0 {
			if _, done := failedOnce.LoadOrStore(v, true); !done {
				return errors.New("store unavailable")
			}
		}
		return nil
	}
	_, js1 := srv.Connect(t)
	_, js2 := srv.Connect(t)
	runOrdered(t, js1, cfg, r.handler("a", fail))
	runOrdered(t, js2, cfg, r.handler("b", fail))
	ctx := testenv.Context(t, 20*time.Second)
	const n = 200
	for i := range n {
		if _, err := js.Publish(ctx, fmt.Sprintf("part.%d", i%2), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	testenv.EventuallyState(t, 20*time.Second, "every message handled", func() (bool, any) { seen := r.count(); return seen >= n, seen })
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range 2 {
		got := r.seen[p]
		if len(got) != n/2 {
			t.Errorf("partition %d handled %d messages, want %d", p, len(got), n/2)
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Errorf("partition %d out of order: %d after %d", p, got[i], got[i-1])
			}
		}
		if len(r.by[p]) != 1 {
			t.Errorf("partition %d handled by %d workers at once, want one owner: %v", p, len(r.by[p]), r.by[p])
		}
	}
}

func TestOrderedPermanentFailureIsDeadLetteredWithoutBlocking(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	cfg := setupOrdered(t, js)
	r := &recorder{seen: map[int][]int{}, by: map[int]map[string]int{}}
	runOrdered(t, js, cfg, r.handler("a", func(v int) error {
		if v == 2 {
			return consume.Permanentf("value %d is poison", v)
		}
		return nil
	}))
	ctx := testenv.Context(t, 10*time.Second)
	for _, v := range []int{0, 2, 4, 6} {
		if _, err := js.Publish(ctx, "part.0", []byte(strconv.Itoa(v))); err != nil {
			t.Fatal(err)
		}
	}
	testenv.EventuallyState(t, 10*time.Second, "the messages behind the poison handled", func() (bool, any) { seen := r.count(); return seen == 3, seen })
	dlq, err := js.Stream(ctx, subjects.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dlq.GetLastMsgForSubject(ctx, subjects.DLQ(orderedStream, "p0"))
	if err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	if string(m.Data) != "2" || m.Header.Get(subjects.HeaderDLQError) != "value 2 is poison" {
		t.Errorf("dead letter %q with reason %q", m.Data, m.Header.Get(subjects.HeaderDLQError))
	}
}

func TestOrderedMessagesCarryTheirOwnMetadataAndAreAcknowledged(t *testing.T) {
	_, js := testenv.JetStream(t)
	cfg := setupOrdered(t, js)
	ctx := testenv.Context(t, 20*time.Second)
	const n = 40
	for v := range n {
		if _, err := js.Publish(ctx, "part.0", []byte(strconv.Itoa(v))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	bad := 0
	seqs := map[uint64]bool{}
	runOrdered(t, js, cfg, func(ctx context.Context, p int, msg jetstream.Msg) ([]jetstream.PubAckFuture, error) {
		md, err := msg.Metadata()
		v, _ := strconv.Atoi(string(msg.Data()))
		mu.Lock()
		defer mu.Unlock()
		// Published one by one into an empty stream: value v is stream
		// sequence v+1. The metadata parsed at fetch time must be this
		// message's, not a neighbour's of the same batch.
		if err != nil || md.Sequence.Stream != uint64(v+1) {
			bad++
		}
		seqs[md.Sequence.Stream] = true
		return nil, nil
	})
	cons, err := js.Consumer(ctx, orderedStream, cfg.Consumers[0])
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "every message acknowledged", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.AckFloor.Stream == n && info.NumAckPending == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if bad != 0 || len(seqs) != n {
		t.Errorf("%d messages with wrong metadata, %d distinct sequences of %d", bad, len(seqs), n)
	}
}

// TestOrderedTakeoverWaitsForTheDeadOwnersMessages: an owner fetched the
// first messages of a partition and died without acknowledging them, and
// the pin moved before their ack wait ran out. The new owner must not handle
// the newer messages first: it waits for the old ones to come back and
// handles the partition in stream order.
func TestOrderedTakeoverWaitsForTheDeadOwnersMessages(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	cfg := setupOrdered(t, js)
	ctx := testenv.Context(t, 30*time.Second)
	cons, err := js.Consumer(ctx, orderedStream, "p0")
	if err != nil {
		t.Fatal(err)
	}
	cc := cons.CachedInfo().Config
	cc.AckWait = time.Second
	if _, err := js.UpdateConsumer(ctx, orderedStream, cc); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		if _, err := js.Publish(ctx, "part.0", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	deadNC, deadJS := srv.Connect(t)
	dead, err := deadJS.Consumer(ctx, orderedStream, "p0")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := dead.Fetch(5, jetstream.FetchPriorityGroup(cfg.Group), jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for range batch.Messages() {
		held++
	}
	if held != 5 {
		t.Fatalf("the first owner fetched %d messages, want 5", held)
	}
	deadNC.Close()
	s, err := js.Stream(ctx, orderedStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinConsumer(ctx, "p0", cfg.Group); err != nil {
		t.Fatal(err)
	}

	r := &recorder{seen: map[int][]int{}, by: map[int]map[string]int{}}
	runOrdered(t, js, cfg, r.handler("next", func(int) error { return nil }))
	testenv.EventuallyState(t, 20*time.Second, "every message handled", func() (bool, any) { seen := r.count(); return seen >= n, seen })
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, v := range r.seen[0] {
		if v != i {
			t.Fatalf("handled %v, want 0..%d in order", r.seen[0], n-1)
		}
	}
}

// A publish the server refuses sends the partition back to that message:
// the messages that arrived behind it on the open pull request go back
// too, and are handled after it, not before.
func TestOrderedPublishFailureResumesAtThatMessage(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	cfg := setupOrdered(t, js)
	cfg.FetchWait = 2 * time.Second // the pull request stays open while newer messages arrive
	ctx := testenv.Context(t, 30*time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OUTS", Subjects: []string{"outs.>"}}); err != nil {
		t.Fatal(err)
	}
	const k = 3
	var mu sync.Mutex
	var handled []int
	refused := false
	_, hjs := srv.Connect(t)
	h := func(_ context.Context, _ int, msg jetstream.Msg) ([]jetstream.PubAckFuture, error) {
		v, _ := strconv.Atoi(string(msg.Data()))
		mu.Lock()
		handled = append(handled, v)
		var opts []jetstream.PublishOpt
		first := v == k && !refused
		if first {
			refused = true
			// The server refuses a publish expecting another last sequence.
			opts = append(opts, jetstream.WithExpectLastSequence(1<<40))
		}
		mu.Unlock()
		if first {
			// Long enough for k+1 and k+2 to arrive behind k.
			time.Sleep(150 * time.Millisecond)
		}
		f, err := hjs.PublishAsync("outs."+strconv.Itoa(v), msg.Data(), opts...)
		if err != nil {
			return nil, err
		}
		return []jetstream.PubAckFuture{f}, nil
	}
	runOrdered(t, hjs, cfg, h)
	pub := func(v int) {
		if _, err := js.Publish(ctx, "part.0", []byte(strconv.Itoa(v))); err != nil {
			t.Fatal(err)
		}
	}
	// The first message makes the runner owner (a takeover holds everything
	// its first pull request delivers).
	pub(0)
	testenv.Eventually(t, 10*time.Second, "partition owned", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 1
	})
	for v := 1; v < k+3; v++ {
		pub(v)
		// One message per group until k; the next ones arrive while k is
		// handled.
		pause := 100 * time.Millisecond
		if v >= k {
			pause = 20 * time.Millisecond
		}
		time.Sleep(pause)
	}
	want := []int{0, 1, 2, 3, 3, 4, 5}
	testenv.Eventually(t, 20*time.Second, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) >= len(want)
	})
	time.Sleep(200 * time.Millisecond) // nothing more may come
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(handled) != fmt.Sprint(want) {
		t.Fatalf("handled %v, want %v (the refused message again before anything newer)", handled, want)
	}
}
