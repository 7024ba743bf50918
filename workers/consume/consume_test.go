package consume_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

const (
	testStream   = "WORK"
	testConsumer = "worker"
)

// setup provisions the real DLQ stream and a work-queue stream with one
// durable consumer like the ones subjects declares.
func setup(t *testing.T, js jetstream.JetStream, ackWait time.Duration, maxDeliver int) {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: testStream, Subjects: []string{"work.>"}, Retention: jetstream.WorkQueuePolicy,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, testStream, jetstream.ConsumerConfig{
		Durable: testConsumer, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: ackWait, MaxDeliver: maxDeliver,
	}); err != nil {
		t.Fatal(err)
	}
}

func publish(t *testing.T, js jetstream.JetStream, ids ...string) {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	for _, id := range ids {
		if _, err := js.Publish(ctx, "work.item", []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
}

func seq(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

// seen records which payloads a handler completed, and how often.
type seen struct {
	mu     sync.Mutex
	counts map[string]int
}

func newSeen() *seen { return &seen{counts: map[string]int{}} }

func (s *seen) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[id]++
}

func (s *seen) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.counts)
}

func (s *seen) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[id]
}

type worker struct {
	metrics *consume.Metrics
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
}

func start(t *testing.T, js jetstream.JetStream, cfg consume.Config, h consume.Handler) *worker {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := consume.NewMetrics(reg)
	if cfg.Role == "" {
		cfg.Role = "test"
	}
	cfg.Stream, cfg.Consumer = testStream, testConsumer
	if cfg.FetchWait == 0 {
		cfg.FetchWait = 200 * time.Millisecond
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 100*time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{metrics: m, reg: reg, cancel: cancel, done: make(chan error, 1)}
	c := consume.New(js, cfg, h, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { w.done <- c.Run(ctx) }()
	t.Cleanup(func() { w.stop(t) })
	return w
}

func (w *worker) stop(t *testing.T) {
	t.Helper()
	w.once.Do(func() {
		w.cancel()
		select {
		case err := <-w.done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return within 30s of cancel")
		}
	})
}

func dlqEntries(t *testing.T, js jetstream.JetStream) []jetstream.RawStreamMsg {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	s, err := js.Stream(ctx, subjects.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for sq := info.State.FirstSeq; sq <= info.State.LastSeq && info.State.Msgs > 0; sq++ {
		m, err := s.GetMsg(ctx, sq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *m)
	}
	return out
}

func TestPoisonMessageGoesToDLQOnceAndOthersFlow(t *testing.T) {
	_, js := testenv.JetStream(t)
	setup(t, js, 5*time.Second, 5)
	got := newSeen()
	w := start(t, js, consume.Config{Concurrency: 1, Batch: 1}, func(ctx context.Context, m jetstream.Msg) error {
		if string(m.Data()) == "poison" {
			return consume.Permanentf("payload %q is not a number", m.Data())
		}
		got.add(string(m.Data()))
		return nil
	})
	publish(t, js, "1", "2", "poison", "3", "4")
	testenv.Eventually(t, 10*time.Second, "the four good messages behind the poison one are handled", func() bool {
		return got.distinct() == 4
	})
	testenv.Eventually(t, 5*time.Second, "dead-letter counted", func() bool {
		return testutil.ToFloat64(w.metrics.DeadLettered("test")) == 1
	})
	dlq := dlqEntries(t, js)
	if len(dlq) != 1 {
		t.Fatalf("DLQ holds %d entries, want 1", len(dlq))
	}
	e := dlq[0]
	if string(e.Data) != "poison" {
		t.Errorf("DLQ payload %q, want the original", e.Data)
	}
	if e.Subject != subjects.DLQ(testStream, testConsumer) {
		t.Errorf("DLQ subject %q", e.Subject)
	}
	want := map[string]string{
		subjects.HeaderDLQSubject:    "work.item",
		subjects.HeaderDLQStream:     testStream,
		subjects.HeaderDLQConsumer:   testConsumer,
		subjects.HeaderDLQSequence:   "3",
		subjects.HeaderDLQDeliveries: "1",
		subjects.HeaderDLQError:      `payload "poison" is not a number`,
	}
	for k, v := range want {
		if got := e.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

func TestTransientFailureIsRetriedThenDeadLetteredAtMaxDeliver(t *testing.T) {
	_, js := testenv.JetStream(t)
	setup(t, js, 5*time.Second, 3)
	var mu sync.Mutex
	attempts := map[string]int{}
	start(t, js, consume.Config{}, func(ctx context.Context, m jetstream.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		id := string(m.Data())
		attempts[id]++
		switch {
		case id == "flaky" && attempts[id] < 2:
			return errors.New("upstream timeout")
		case id == "down":
			return errors.New("upstream down")
		}
		return nil
	})
	publish(t, js, "flaky", "down")
	testenv.Eventually(t, 10*time.Second, "the always-failing message reaches the DLQ", func() bool {
		return len(dlqEntries(t, js)) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if attempts["flaky"] != 2 {
		t.Errorf("flaky handled %d times, want 2 (one failure, one success)", attempts["flaky"])
	}
	if attempts["down"] != 3 {
		t.Errorf("down handled %d times, want MaxDeliver=3", attempts["down"])
	}
	if d := dlqEntries(t, js)[0].Header.Get(subjects.HeaderDLQDeliveries); d != "3" {
		t.Errorf("deliveries header %q, want 3", d)
	}
}

func TestPanickingHandlerIsRecoveredAndRetried(t *testing.T) {
	_, js := testenv.JetStream(t)
	setup(t, js, 5*time.Second, 5)
	got := newSeen()
	var once sync.Once
	start(t, js, consume.Config{}, func(ctx context.Context, m jetstream.Msg) error {
		once.Do(func() { panic("boom") })
		got.add(string(m.Data()))
		return nil
	})
	publish(t, js, "a")
	testenv.Eventually(t, 10*time.Second, "message handled after the panic", func() bool { return got.count("a") == 1 })
}

// A worker that dies holding a message (its connection gone, no ack) must
// not lose it: the server redelivers it to another instance after AckWait.
func TestMessageOfKilledWorkerIsProcessedByAnother(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, admin := srv.Connect(t)
	setup(t, admin, time.Second, 5)

	ncA, jsA := srv.Connect(t)
	taken := make(chan struct{})
	var takenOnce sync.Once
	start(t, jsA, consume.Config{Role: "a", ShutdownGrace: 100 * time.Millisecond}, func(ctx context.Context, m jetstream.Msg) error {
		takenOnce.Do(func() { close(taken) })
		<-ctx.Done() // hangs until the process "dies"
		return ctx.Err()
	})
	publish(t, admin, "job")
	select {
	case <-taken:
	case <-time.After(10 * time.Second):
		t.Fatal("worker A never received the job")
	}
	ncA.Close() // the process is gone: no ack, no nak

	_, jsB := srv.Connect(t)
	got := newSeen()
	start(t, jsB, consume.Config{Role: "b"}, func(ctx context.Context, m jetstream.Msg) error {
		got.add(string(m.Data()))
		return nil
	})
	testenv.Eventually(t, 10*time.Second, "worker B processes the job A died holding", func() bool {
		return got.count("job") == 1
	})
}

func TestTwoInstancesShareTheWork(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, admin := srv.Connect(t)
	setup(t, admin, 5*time.Second, 5)
	all := newSeen()
	var mu sync.Mutex
	perInstance := map[string]int{}
	for _, name := range []string{"a", "b"} {
		_, js := srv.Connect(t)
		start(t, js, consume.Config{Role: name, Batch: 8, Concurrency: 4}, func(ctx context.Context, m jetstream.Msg) error {
			time.Sleep(2 * time.Millisecond) // work that takes time, so both get a share
			all.add(string(m.Data()))
			mu.Lock()
			perInstance[name]++
			mu.Unlock()
			return nil
		})
	}
	publish(t, admin, seq(400)...)
	testenv.EventuallyState(t, 30*time.Second, "all 400 handled", func() (bool, any) { seen := all.distinct(); return seen == 400, seen })
	mu.Lock()
	defer mu.Unlock()
	if perInstance["a"] == 0 || perInstance["b"] == 0 {
		t.Fatalf("work not shared: %v", perInstance)
	}
	if perInstance["a"]+perInstance["b"] != 400 {
		t.Fatalf("handled %d times in all, want 400 (no duplicates)", perInstance["a"]+perInstance["b"])
	}
}

// Stopping a worker mid-stream finishes what it started, acknowledges it,
// and leaves the rest for the next instance: every message is handled exactly
// once.
func TestShutdownFinishesInFlightAndLosesNothing(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, admin := srv.Connect(t)
	setup(t, admin, 30*time.Second, 5)
	const n = 200
	publish(t, admin, seq(n)...)

	got := newSeen()
	slow := func(ctx context.Context, m jetstream.Msg) error {
		time.Sleep(5 * time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		got.add(string(m.Data()))
		return nil
	}
	_, js1 := srv.Connect(t)
	w1 := start(t, js1, consume.Config{Batch: 16, Concurrency: 8}, slow)
	testenv.EventuallyState(t, 10*time.Second, "first worker made progress", func() (bool, any) { seen := got.distinct(); return seen >= 20, seen })
	w1.stop(t)
	handledByFirst := got.distinct()
	if acked := testutil.ToFloat64(w1.metrics.Processed("test")); int(acked) != handledByFirst {
		t.Fatalf("first worker handled %d but acknowledged %d", handledByFirst, int(acked))
	}
	if handledByFirst == n {
		t.Fatalf("first worker finished everything before the stop; the test proves nothing")
	}

	_, js2 := srv.Connect(t)
	start(t, js2, consume.Config{Batch: 16, Concurrency: 8}, slow)
	testenv.EventuallyState(t, 30*time.Second, fmt.Sprintf("all %d handled after restart", n), func() (bool, any) { seen := got.distinct(); return seen == n, seen })
	for _, id := range seq(n) {
		if c := got.count(id); c != 1 {
			t.Errorf("message %s handled %d times", id, c)
		}
	}
}

// A vendor's Retry-After is honoured by the runtime: the message comes back
// no sooner than asked (not after the short backoff), and the handler is not
// held meanwhile, so the messages behind it go on.
func TestRetryAfterRedeliversNoSoonerThanAskedAndOthersFlow(t *testing.T) {
	_, js := testenv.JetStream(t)
	setup(t, js, 5*time.Second, 5)
	var mu sync.Mutex
	var first, again time.Time
	got := newSeen()
	start(t, js, consume.Config{Concurrency: 1, Batch: 1}, func(ctx context.Context, m jetstream.Msg) error {
		id := string(m.Data())
		if id == "limited" {
			mu.Lock()
			defer mu.Unlock()
			if first.IsZero() {
				first = time.Now()
				return consume.RetryAfter(1500*time.Millisecond, errors.New("429 rate limited"))
			}
			again = time.Now()
		}
		got.add(id)
		return nil
	})
	publish(t, js, "limited", "1", "2")
	testenv.Eventually(t, 10*time.Second, "the limited message is handled again", func() bool {
		return got.distinct() == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if gap := again.Sub(first); gap < 1500*time.Millisecond {
		t.Fatalf("redelivered after %v, want no sooner than the 1.5s asked (backoff is 20–100ms)", gap)
	}
	if d, ok := consume.RetryAfterOf(fmt.Errorf("wrapped: %w", consume.RetryAfter(time.Hour, errors.New("x")))); !ok || d != time.Hour {
		t.Fatalf("RetryAfterOf through a wrap = %v, %v", d, ok)
	}
}
