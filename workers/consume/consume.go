// Package consume is the runtime every worker role runs on: it pulls batches
// from a durable JetStream consumer, runs the role's handler on each message
// with bounded concurrency, acknowledges successes, retries transient failures
// with exponential backoff and jitter, and dead-letters what cannot succeed so
// the messages behind it keep flowing. Retry classification, dead-lettering,
// metrics, panic recovery and graceful shutdown live here once, so a role
// package holds only its domain logic and declares its roles as Role values
// (role.go); cmd/jetfleet lists them and runs the chosen ones with RunRoles.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/workers/deadletter"
)

// Handler handles one message. It returns nil when the message is done,
// Permanent(err) when it can never succeed, and any other error when a later
// attempt may succeed. Handlers must be idempotent: delivery is at least once.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// Config names the consumer a role runs and tunes how.
type Config struct {
	Role     string // metrics label and log attribute
	Stream   string
	Consumer string // durable name, provisioned by subjects.Provision

	Batch       int           // messages per Fetch; default 64
	Concurrency int           // handlers in flight; default 16
	FetchWait   time.Duration // longest wait of one Fetch; bounds shutdown latency; default 1s
	BackoffMin  time.Duration // first retry delay; default 500ms
	BackoffMax  time.Duration // retry delay cap; default 1m
	// ShutdownGrace is how long in-flight handlers may run after Run's context
	// ends before their own context is cancelled; default 30s.
	ShutdownGrace time.Duration
}

func (c *Config) setDefaults() {
	if c.Batch <= 0 {
		c.Batch = 64
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.FetchWait <= 0 {
		c.FetchWait = time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 500 * time.Millisecond
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(time.Minute, c.BackoffMin)
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 30 * time.Second
	}
}

// Consumer runs one handler over one durable consumer.
type Consumer struct {
	cfg     Config
	js      jetstream.JetStream
	handler Handler
	metrics *Metrics
	log     *slog.Logger
}

// New prepares a consumer; Run starts it.
func New(js jetstream.JetStream, cfg Config, h Handler, m *Metrics, log *slog.Logger) *Consumer {
	cfg.setDefaults()
	m.forRole(cfg.Role)
	return &Consumer{
		cfg:     cfg,
		js:      js,
		handler: h,
		metrics: m,
		log:     log.With("role", cfg.Role, "stream", cfg.Stream, "consumer", cfg.Consumer),
	}
}

// Run pulls and handles messages until ctx ends, then stops fetching, lets
// the handlers in flight finish (up to ShutdownGrace) and returns. Messages
// fetched but not finished are not acknowledged, so the server redelivers
// them to another instance: nothing is lost.
func (c *Consumer) Run(ctx context.Context) error {
	cons, err := c.js.Consumer(ctx, c.cfg.Stream, c.cfg.Consumer)
	if err != nil && ctx.Err() != nil {
		return nil // stopped before it started: a clean stop, not a failure
	}
	if err != nil {
		return fmt.Errorf("consumer %s/%s: %w", c.cfg.Stream, c.cfg.Consumer, err)
	}
	maxDeliver := cons.CachedInfo().Config.MaxDeliver

	// Handlers outlive Run's context so a shutdown finishes what it started.
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	var inflight sync.WaitGroup
	slots := make(chan struct{}, c.cfg.Concurrency)

	c.log.Info("consumer started", "batch", c.cfg.Batch, "concurrency", c.cfg.Concurrency)
	for ctx.Err() == nil {
		n := c.acquire(ctx, slots)
		if n == 0 {
			break
		}
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(c.cfg.FetchWait))
		if err != nil {
			release(slots, n)
			c.log.Warn("fetch failed", "err", err)
			sleep(ctx, c.cfg.BackoffMin)
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer release(slots, 1)
				c.handle(handlerCtx, msg, maxDeliver)
			}()
		}
		release(slots, n-got)
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			c.log.Warn("fetch ended with error", "err", err)
		}
		if got == 0 {
			c.metrics.pending.WithLabelValues(c.cfg.Role).Set(0)
		}
	}

	done := make(chan struct{})
	go func() { inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.ShutdownGrace):
		c.log.Warn("shutdown grace over; cancelling handlers in flight", "grace", c.cfg.ShutdownGrace)
		cancelHandlers()
		<-done
	}
	c.log.Info("consumer stopped")
	return nil
}

// acquire takes at least one free handler slot (waiting for it) and then as
// many more as are free, up to Batch, so a Fetch never asks for more messages
// than can start at once.
func (c *Consumer) acquire(ctx context.Context, slots chan struct{}) int {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < c.cfg.Batch {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func release(slots chan struct{}, n int) {
	for range n {
		<-slots
	}
}

func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg, maxDeliver int) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to ack or redeliver.
		c.log.Error("message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	start := time.Now()
	err = c.call(ctx, msg)
	c.metrics.latency.WithLabelValues(c.cfg.Role).Observe(time.Since(start).Seconds())
	c.metrics.pending.WithLabelValues(c.cfg.Role).Set(float64(md.NumPending))

	if err == nil {
		if err := msg.Ack(); err != nil {
			c.log.Warn("ack failed; message will be redelivered", "seq", md.Sequence.Stream, "err", err)
			return
		}
		c.metrics.processed.WithLabelValues(c.cfg.Role).Inc()
		return
	}
	c.metrics.failed.WithLabelValues(c.cfg.Role).Inc()
	log := c.log.With("subject", msg.Subject(), "seq", md.Sequence.Stream, "delivery", md.NumDelivered, "err", err)

	lastAttempt := maxDeliver > 0 && md.NumDelivered >= uint64(maxDeliver)
	if !IsPermanent(err) && !lastAttempt {
		delay := c.backoff(md.NumDelivered)
		if d, ok := RetryAfterOf(err); ok {
			delay = d // the vendor's word, not our backoff: never sooner
		}
		log.Warn("handler failed; retrying", "retry_in", delay)
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn("nak failed; message will be redelivered after ack wait", "nak_err", err)
		}
		return
	}
	if err := c.deadLetter(ctx, msg, md, err); err != nil {
		// Keep the message: it is retried and dead-lettered on a later try.
		log.Error("dead-letter failed; keeping the message", "dlq_err", err)
		_ = msg.NakWithDelay(c.backoff(md.NumDelivered))
		return
	}
	c.metrics.deadLettered.WithLabelValues(c.cfg.Role).Inc()
	log.Error("message dead-lettered", "permanent", IsPermanent(err))
	if err := msg.TermWithReason(truncate(err.Error(), 200)); err != nil {
		log.Warn("term failed; the message may be delivered again and dead-lettered once", "term_err", err)
	}
}

// call runs the handler, turning a panic into an ordinary (retryable) error so
// one bad message cannot take the worker down.
func (c *Consumer) call(ctx context.Context, msg jetstream.Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked", "subject", msg.Subject(), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return c.handler(ctx, msg)
}

// backoff is exponential in the delivery count with jitter in [d/2, d], so
// many messages failing together do not retry together.
func (c *Consumer) backoff(delivery uint64) time.Duration {
	d := c.cfg.BackoffMin
	for i := uint64(1); i < delivery && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// deadLetter copies msg to the DLQ stream with the reason.
func (c *Consumer) deadLetter(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, cause error) error {
	return deadletter.Write(ctx, c.js, deadletter.Record{
		Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data(),
		Stream: md.Stream, Consumer: md.Consumer, Seq: md.Sequence.Stream, Deliveries: md.NumDelivered,
		Cause: cause.Error(),
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
