package consume

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// OrderedConfig names the partition consumers an ordered role runs.
//
// Each partition is one durable consumer with a pinned priority group
// (jetstream.PriorityPolicyPinned): the server delivers a partition's
// messages to one client at a time, and hands the partition to another
// client only when the pinned one stops pulling for the consumer's
// PinnedTTL (or unpins on shutdown). Every instance of the role pulls every
// partition; whichever is pinned owns it. Inside the owner a partition is
// handled one message at a time, in stream order.
//
// The partitions are either filtered consumers of one stream (Stream) or
// each the consumer of a stream of its own (Streams), which costs the server
// about half the CPU per message.
type OrderedConfig struct {
	Role      string
	Stream    string   // the stream of every partition, unless Streams is set
	Streams   []string // the stream of each partition, in partition order
	Consumers []string // one durable per partition, in partition order
	Group     string   // the consumers' priority group

	Batch      int           // messages per pull request; default 256
	FetchWait  time.Duration // how long a pull request stays open; bounds shutdown latency; default 1s
	BackoffMin time.Duration // first pause after a transient failure; default 200ms
	BackoffMax time.Duration // pause cap; default 5s (keep it under the PinnedTTL)
	// PublishTimeout bounds the wait for the acks of a handler's publishes;
	// at most, and by default, half the consumers' ack wait. Messages delivered behind a
	// group wait with their ack wait running; giving up before it ends
	// sends them back in order (NAK) instead of letting the server
	// redeliver them behind newer ones.
	PublishTimeout time.Duration
	// Prepare, when set, is called with each group of a partition's
	// messages that arrived together, before they are handled one by one: a
	// role can load what the group needs concurrently (e.g. state reads)
	// instead of one round trip per message. It must not change anything
	// the handler's order protects. Messages taken in while a failing one is
	// retried are handled without it: the handler must not depend on it.
	// The messages given to Prepare and the handler parse their Metadata
	// once: callers must not change what it returns.
	Prepare func(ctx context.Context, partition int, msgs []jetstream.Msg)
}

func (c *OrderedConfig) setDefaults() {
	if c.Batch <= 0 {
		c.Batch = 256
	}
	if c.FetchWait <= 0 {
		c.FetchWait = time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 200 * time.Millisecond
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(5*time.Second, c.BackoffMin)
	}
}

// OrderedHandler handles one message of partition. It returns the publishes
// it started (the message is acknowledged only once all are confirmed), or:
//   - Permanent(err): the message is dead-lettered and the partition goes on;
//   - Park(d): the message is NAKed with delay d and the partition goes on
//     (it comes back later; use it only for messages whose order does not
//     matter to what follows);
//   - any other error: the message is retried in place with backoff while
//     the messages behind it are held, so the partition resumes with this
//     message and keeps its order.
type OrderedHandler func(ctx context.Context, partition int, msg jetstream.Msg) ([]jetstream.PubAckFuture, error)

// parkError asks for a redelivery after delay.
type parkError struct{ delay time.Duration }

func (e *parkError) Error() string { return fmt.Sprintf("parked for %v", e.delay) }

// Park tells the ordered runtime to redeliver the message after delay
// without holding up the messages behind it.
func Park(delay time.Duration) error { return &parkError{delay: delay} }

// OrderedConsumer runs an OrderedHandler over partition consumers.
type OrderedConsumer struct {
	cfg     OrderedConfig
	js      jetstream.JetStream
	handler OrderedHandler
	dlq     *Consumer // for dead-lettering and metrics, shared with the plain runtime
	log     *slog.Logger

	// The role's series, looked up once instead of per message.
	pending   prometheus.Gauge
	processed prometheus.Counter
	latency   prometheus.Observer
}

// streamOf is the stream of partition p.
func (c *OrderedConfig) streamOf(p int) string {
	if p < len(c.Streams) {
		return c.Streams[p]
	}
	return c.Stream
}

// NewOrdered prepares an ordered consumer; Run starts it.
func NewOrdered(js jetstream.JetStream, cfg OrderedConfig, h OrderedHandler, m *Metrics, log *slog.Logger) *OrderedConsumer {
	cfg.setDefaults()
	m.forRole(cfg.Role)
	log = log.With("role", cfg.Role)
	if len(cfg.Streams) == 0 {
		log = log.With("stream", cfg.Stream)
	}
	return &OrderedConsumer{
		cfg:     cfg,
		js:      js,
		handler: h,
		dlq:     &Consumer{cfg: Config{Role: cfg.Role, Stream: cfg.Stream}, js: js, metrics: m, log: log},
		log:     log,

		pending:   m.pending.WithLabelValues(cfg.Role),
		processed: m.processed.WithLabelValues(cfg.Role),
		latency:   m.latency.WithLabelValues(cfg.Role),
	}
}

// Run pulls every partition until ctx ends. A batch in hand is finished
// (its publishes confirmed and acknowledged) before Run returns, and the
// partitions this instance owned are unpinned so another instance takes
// them over at once.
func (o *OrderedConsumer) Run(ctx context.Context) error {
	if len(o.cfg.Streams) > 0 && len(o.cfg.Streams) != len(o.cfg.Consumers) {
		return fmt.Errorf("ordered consumer %s: %d streams for %d consumers", o.cfg.Role, len(o.cfg.Streams), len(o.cfg.Consumers))
	}
	var conss []jetstream.Consumer
	for p, name := range o.cfg.Consumers {
		stream := o.cfg.streamOf(p)
		cons, err := o.js.Consumer(ctx, stream, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting: not a failure
			}
			return fmt.Errorf("consumer %s/%s: %w", stream, name, err)
		}
		conss = append(conss, cons)
		if wait := ackWaitOf(cons) / 2; o.cfg.PublishTimeout <= 0 || wait < o.cfg.PublishTimeout {
			o.cfg.PublishTimeout = wait
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for p, cons := range conss {
		g.Go(func() error {
			o.runPartition(gctx, p, cons)
			return nil
		})
	}
	o.log.Info("ordered consumer started", "partitions", len(o.cfg.Consumers), "batch", o.cfg.Batch)
	err := g.Wait()
	o.log.Info("ordered consumer stopped")
	return err
}

func (o *OrderedConsumer) runPartition(ctx context.Context, p int, cons jetstream.Consumer) {
	log := o.log.With("partition", p, "consumer", cons.CachedInfo().Name)
	if len(o.cfg.Streams) > 0 {
		log = log.With("stream", o.cfg.streamOf(p))
	}
	owned := false
	for ctx.Err() == nil {
		// One pull request stays open for up to Batch messages or
		// FetchWait, and its messages are handled as they arrive, in the
		// groups that arrived together: a quiet partition handles a message
		// the moment it comes, a busy one pays one pull request per Batch.
		// (A fetch-then-handle cycle either waits for batches to fill or
		// pays a pull request and an expiry status per handful of messages:
		// at 5,000 lessons/s the Enricher's batches averaged 1.9 messages.)
		batch, err := cons.Fetch(o.cfg.Batch, jetstream.FetchMaxWait(o.cfg.FetchWait), jetstream.FetchPriorityGroup(o.cfg.Group))
		if err != nil {
			log.Warn("fetch failed", "err", err)
			sleep(ctx, o.cfg.BackoffMin)
			continue
		}
		in := batch.Messages()
		got := 0
		for {
			msgs := arrived(in, o.cfg.Batch)
			if len(msgs) == 0 {
				break
			}
			got += len(msgs)
			if !owned {
				owned = true
				log.Info("partition owned")
				msgs = o.takeOver(ctx, cons, append(msgs, drain(in)...), log)
			}
			if o.cfg.Prepare != nil {
				o.cfg.Prepare(context.WithoutCancel(ctx), p, msgs)
			}
			// Handling is not cut short by ctx: messages in hand are
			// finished (only retries of a failing message stop with ctx).
			if !o.handleBatch(ctx, context.WithoutCancel(ctx), p, msgs, in, log) {
				sleep(ctx, o.cfg.BackoffMin)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			if errors.Is(err, jetstream.ErrPinIDMismatch) {
				owned = false
			} else {
				log.Debug("fetch ended with error", "err", err)
			}
		}
		if got == 0 {
			o.pending.Set(0)
		}
	}
	if owned {
		unpinCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if s, err := o.js.Stream(unpinCtx, o.cfg.streamOf(p)); err == nil {
			if err := s.UnpinConsumer(unpinCtx, cons.CachedInfo().Name, o.cfg.Group); err != nil {
				log.Debug("unpin failed; the partition moves after the pinned TTL", "err", err)
			}
		}
	}
}

// arrived waits for the next message of an open fetch and takes the others
// already there, up to n; none when the fetch has ended.
func arrived(in <-chan jetstream.Msg, n int) []jetstream.Msg {
	m, ok := <-in
	if !ok {
		return nil
	}
	msgs := []jetstream.Msg{withMetadata(m)}
	for len(msgs) < n {
		select {
		case m, ok := <-in:
			if !ok {
				return msgs
			}
			msgs = append(msgs, withMetadata(m))
		default:
			return msgs
		}
	}
	return msgs
}

// drain waits for an open fetch to end and returns what it still delivers.
func drain(in <-chan jetstream.Msg) []jetstream.Msg {
	var msgs []jetstream.Msg
	for m := range in {
		msgs = append(msgs, withMetadata(m))
	}
	return msgs
}

// takeOver completes the first batch of a partition this instance has just
// been pinned to. The previous owner may have died holding older messages,
// which the server redelivers only once their ack wait has run out, and
// possibly after it has already handed this instance newer ones (the pin
// can move before the ack wait ends). Handling the newer ones first would
// break the partition's order, so the batch is kept in hand (InProgress)
// and completed by further fetches until the consumer has nothing
// outstanding beyond it, then sorted by stream sequence. Parked messages
// also count as outstanding: after twice the ack wait, everything a dead
// owner held has come back, and the wait ends.
func (o *OrderedConsumer) takeOver(ctx context.Context, cons jetstream.Consumer, msgs []jetstream.Msg, log *slog.Logger) []jetstream.Msg {
	ackWait := ackWaitOf(cons)
	start := time.Now()
	touched := start
	for ctx.Err() == nil {
		info, err := cons.Info(ctx)
		if err != nil {
			log.Warn("takeover: consumer info failed; handling what is in hand", "err", err)
			break
		}
		outstanding := info.NumAckPending - len(msgs)
		if outstanding <= 0 {
			break
		}
		if time.Since(start) > 2*ackWait {
			log.Info("takeover: still outstanding after twice the ack wait (parked messages)", "outstanding", outstanding)
			break
		}
		if time.Since(touched) > ackWait/4 {
			for _, m := range msgs {
				_ = m.InProgress()
			}
			touched = time.Now()
		}
		var batchErr error
		msgs, batchErr, err = o.fetch(cons, msgs, o.cfg.Batch, min(o.cfg.FetchWait, ackWait/4))
		if err != nil {
			sleep(ctx, o.cfg.BackoffMin)
			continue
		}
		if errors.Is(batchErr, jetstream.ErrPinIDMismatch) {
			break // pinned elsewhere again: the next fetch finds out
		}
	}
	if len(msgs) > 1 {
		log.Info("takeover: partition resumes", "messages", len(msgs), "waited", time.Since(start).Round(time.Millisecond))
	}
	return sortBySequence(msgs)
}

// ackWaitOf is how long the server waits for an ack of cons's messages.
func ackWaitOf(cons jetstream.Consumer) time.Duration {
	if w := cons.CachedInfo().Config.AckWait; w > 0 {
		return w
	}
	return 30 * time.Second // the server's default
}

// fetch pulls up to n messages of the partition's group, waiting at most
// wait, and appends them to msgs. err is a failed request; batchErr how the
// batch ended (a timeout, a pin mismatch…).
func (o *OrderedConsumer) fetch(cons jetstream.Consumer, msgs []jetstream.Msg, n int, wait time.Duration) (_ []jetstream.Msg, batchErr, err error) {
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(wait), jetstream.FetchPriorityGroup(o.cfg.Group))
	if err != nil {
		return msgs, nil, err
	}
	for m := range batch.Messages() {
		msgs = append(msgs, withMetadata(m))
	}
	return msgs, batch.Error(), nil
}

// sortBySequence orders msgs by stream sequence; of a message delivered twice
// the last delivery is kept (only its ack counts).
func sortBySequence(msgs []jetstream.Msg) []jetstream.Msg {
	seq := func(m jetstream.Msg) uint64 {
		if md, err := m.Metadata(); err == nil {
			return md.Sequence.Stream
		}
		return 0
	}
	slices.SortStableFunc(msgs, func(a, b jetstream.Msg) int { return cmp.Compare(seq(a), seq(b)) })
	out := msgs[:0]
	for i, m := range msgs {
		if i+1 < len(msgs) && seq(msgs[i+1]) == seq(m) && seq(m) != 0 {
			continue
		}
		out = append(out, m)
	}
	return out
}

// pendingAck is a handled message waiting for its publishes.
type pendingAck struct {
	msg     jetstream.Msg
	seq     uint64
	futures []jetstream.PubAckFuture
	start   time.Time
}

// handleBatch handles msgs in order and reports whether the whole batch went
// through. A transient failure is retried in place, with backoff, while the
// rest of the batch, and whatever the open fetch in still delivers, is kept
// in hand (InProgress extends its ack wait): a NAK would let the server
// deliver newer messages of the partition first. Only when run ends during
// the retries is the rest NAKed, without delay, so the next owner gets it
// before anything newer.
func (o *OrderedConsumer) handleBatch(run, ctx context.Context, p int, msgs []jetstream.Msg, in <-chan jetstream.Msg, log *slog.Logger) bool {
	if md, err := msgs[len(msgs)-1].Metadata(); err == nil {
		o.pending.Set(float64(md.NumPending))
	}
	pending := make([]pendingAck, 0, len(msgs))
	ok := true
	rest := len(msgs) // index of the first message to NAK unhandled
	attempt := 0      // failed tries of the current message
	for i := 0; i < len(msgs); i++ {
		msg := msgs[i]
		md, err := msg.Metadata()
		if err != nil {
			log.Error("message without metadata", "subject", msg.Subject(), "err", err)
			continue
		}
		start := time.Now()
		futures, err := o.call(ctx, p, msg)
		var park *parkError
		switch {
		case err == nil:
			attempt = 0
			pending = append(pending, pendingAck{msg: msg, seq: md.Sequence.Stream, futures: futures, start: start})
			continue
		case errors.As(err, &park):
			if err := msg.NakWithDelay(park.delay); err != nil {
				log.Warn("park nak failed; redelivered after ack wait", "seq", md.Sequence.Stream, "err", err)
			}
			continue
		case IsPermanent(err):
			o.dlq.metrics.failed.WithLabelValues(o.cfg.Role).Inc()
			if dlqErr := o.dlq.deadLetter(ctx, msg, md, err); dlqErr != nil {
				log.Error("dead-letter failed; retrying", "seq", md.Sequence.Stream, "dlq_err", dlqErr)
				break
			}
			o.dlq.metrics.deadLettered.WithLabelValues(o.cfg.Role).Inc()
			log.Warn("message dead-lettered", "subject", msg.Subject(), "seq", md.Sequence.Stream, "err", err)
			if err := msg.TermWithReason(truncate(err.Error(), 200)); err != nil {
				log.Warn("term failed; the message may be dead-lettered again (deduplicated)", "err", err)
			}
			continue
		default:
			o.dlq.metrics.failed.WithLabelValues(o.cfg.Role).Inc()
			log.Warn("handler failed; retrying in place", "seq", md.Sequence.Stream, "delivery", md.NumDelivered, "err", err)
		}
		// Retry msgs[i] after a pause, unless the run is over.
		if ok {
			msgs = append(msgs, drain(in)...)
			rest = len(msgs)
		}
		ok = false
		attempt++
		sleep(run, o.backoff(attempt))
		if run.Err() != nil {
			rest = i
			break
		}
		for _, m := range msgs[i:] {
			_ = m.InProgress()
		}
		i--
	}
	// Ack in order what was published; from the first failed publish on,
	// everything is NAKed (no delay: redeliveries come before newer
	// messages) so the partition resumes there.
	failedAt := len(pending)
	// One deadline for the whole batch: a timer per message was the
	// runtime's largest allocation per event (bench profile).
	timer := time.NewTimer(o.cfg.PublishTimeout)
	defer timer.Stop()
	for i, pa := range pending {
		if err := o.await(ctx, timer.C, pa.futures); err != nil {
			log.Warn("publish not confirmed; resuming the partition there", "seq", pa.seq, "err", err)
			failedAt = i
			ok = false
			break
		}
		if err := pa.msg.Ack(); err != nil {
			log.Warn("ack failed; redelivery is deduplicated", "seq", pa.seq, "err", err)
		}
		o.processed.Inc()
		o.latency.Observe(time.Since(pa.start).Seconds())
	}
	// A failed publish sends the partition back to that message, so what the
	// open fetch still holds, all newer, goes back too: handled now it would
	// overtake the redelivery. NAKs in stream order, which is the order the
	// server redelivers them in.
	var unseen []jetstream.Msg
	if failedAt < len(pending) {
		unseen = drain(in)
	}
	for _, pa := range pending[failedAt:] {
		_ = pa.msg.Nak()
	}
	for _, msg := range msgs[rest:] {
		_ = msg.Nak()
	}
	for _, msg := range unseen {
		_ = msg.Nak()
	}
	return ok
}

// await waits for the acks of futures until timeout fires (the batch's
// PublishTimeout, measured from the end of its handling).
func (o *OrderedConsumer) await(ctx context.Context, timeout <-chan time.Time, futures []jetstream.PubAckFuture) error {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish to %s: %w", f.Msg().Subject, err)
		case <-timeout:
			return fmt.Errorf("publish to %s: no ack within %v", f.Msg().Subject, o.cfg.PublishTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// call runs the handler, turning a panic into a transient error.
func (o *OrderedConsumer) call(ctx context.Context, p int, msg jetstream.Msg) (futures []jetstream.PubAckFuture, err error) {
	defer func() {
		if r := recover(); r != nil {
			o.log.Error("handler panicked", "subject", msg.Subject(), "panic", r)
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return o.handler(ctx, p, msg)
}

func (o *OrderedConsumer) backoff(failures int) time.Duration {
	c := Consumer{cfg: Config{BackoffMin: o.cfg.BackoffMin, BackoffMax: o.cfg.BackoffMax}}
	return c.backoff(uint64(max(failures, 1)))
}

// metaMsg caches a message's metadata: the runtime, Prepare and the handler
// each ask for it, and every call parses the reply subject again.
type metaMsg struct {
	jetstream.Msg
	md  *jetstream.MsgMetadata
	err error
}

func withMetadata(m jetstream.Msg) jetstream.Msg {
	md, err := m.Metadata()
	return &metaMsg{Msg: m, md: md, err: err}
}

// Metadata returns the metadata parsed when the message was fetched.
func (m *metaMsg) Metadata() (*jetstream.MsgMetadata, error) { return m.md, m.err }
