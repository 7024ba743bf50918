// Package counter is the counter worker role: it owns partitions of the
// VIEWS stream (one owner per partition, by a lease in the COUNTER_OWNERS
// bucket), aggregates their batches per (tenant, video, type, minute) in
// memory and flushes everything it owns to ClickHouse in one insert about
// once a second, acknowledging only after the flush.
//
// Exactly-once counting rests on three things:
//   - the flush insert carries, beside the rollup rows, each partition's
//     watermark (highest flushed stream sequence) and is one atomic part
//     (counterdb.Flush);
//   - a new owner reads the watermark from ClickHouse and resets the
//     partition's durable consumer to watermark+1, so a crash between flush
//     and ack replays nothing already counted and the partition is read in
//     order again; messages at or below the watermark are skipped anyway;
//   - one owner at a time: a lease that expires CounterLeaseTTL after its
//     last renewal, and an owner flushes a partition only while its last
//     renewal is younger than a third of the TTL (a fence against a paused
//     owner). Renewals run on their own goroutine and touch only JetStream,
//     so a slow ClickHouse (a long flush or take) never ages a lease.
package counter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"jetfleet/analytics/counterdb"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Config tunes a worker. Zero values take the defaults.
type Config struct {
	WorkerID   string        // unique per process; default a random id
	Table      string        // rollup table; default counter_minute
	FlushEvery time.Duration // default 1s
	FetchBatch int           // messages per Fetch; default 256
	FetchWait  time.Duration // longest wait of one Fetch; default 200ms
	MaxRows    int           // rollup rows held before fetching pauses; default 500,000
	// AfterFlush, when set, runs after a flush is committed in ClickHouse and
	// before its messages are acknowledged; an error from it makes Run return
	// at once without acknowledging or releasing anything, like a crash
	// (tests use it to kill a worker at the worst moment).
	AfterFlush func() error
}

func (c *Config) setDefaults() {
	if c.WorkerID == "" {
		c.WorkerID = nuid.Next()
	}
	if c.Table == "" {
		c.Table = "counter_minute"
	}
	if c.FlushEvery <= 0 {
		c.FlushEvery = time.Second
	}
	if c.FetchBatch <= 0 {
		c.FetchBatch = 256
	}
	if c.FetchWait <= 0 {
		c.FetchWait = 200 * time.Millisecond
	}
	if c.MaxRows <= 0 {
		c.MaxRows = 500_000
	}
}

// Stats count what a worker did.
type Stats struct {
	Flushes, Rows, Events, Skipped, DeadLettered atomic.Uint64
}

// Worker runs the partitions it owns.
type Worker struct {
	cfg   Config
	js    jetstream.JetStream
	ch    driver.Conn
	log   *slog.Logger
	Stats Stats
}

// New prepares a worker; Run starts it. The VIEWS stream, its consumers and
// the counter buckets must exist (subjects.Provision).
func New(js jetstream.JetStream, ch driver.Conn, cfg Config, log *slog.Logger) *Worker {
	cfg.setDefaults()
	return &Worker{cfg: cfg, js: js, ch: ch, log: log.With("role", "counter", "worker", cfg.WorkerID)}
}

// Lease timing: an owner starts a flush only if its lease was renewed less
// than leaseFence ago and bounds the insert by insertTimeout, so the insert
// ends while the lease (CounterLeaseTTL) is surely still its own:
// leaseFence + insertTimeout = 5/6 of the TTL, counted from the moment
// before the renewal was sent (the server's expiry starts later). With
// renewals on their own goroutine the lease is rarely older than a second
// at a flush, so a slow ClickHouse gets the longest insert that is safe.
//
// kvTimeout bounds each KV write of the flush loop on its own: a request
// lost with a dying stream leader is never answered, and under a run
// context with a deadline nats.go applies no default timeout, so one lost
// freshness write held every flush until the deadline (seen in the
// cluster test: 2,780 acknowledged events uncounted for 90 s).
const (
	leaseFence    = subjects.CounterLeaseTTL / 3
	insertTimeout = subjects.CounterLeaseTTL / 2
	kvTimeout     = subjects.CounterLeaseTTL / 3
)

// errCrash ends Run without the orderly release (AfterFlush's error).
var errCrash = errors.New("simulated crash")

type aggKey struct {
	tenant, video string
	typ           subjects.CounterType
	minute        int64
}

type agg struct {
	events uint64
	total  int64
}

// partition is one owned partition: its lease, its fetcher and the
// aggregate of what was fetched since the last flush.
type partition struct {
	n      int
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	rev       uint64    // lease revision
	renewed   time.Time // start of the last successful renewal
	releasing bool      // flush, ack, then give the lease up
	flushedWM uint64    // watermark in ClickHouse
	seen      uint64    // highest sequence aggregated
	// lastDelivery is the consumer (delivery) sequence of the last message
	// received, 0 right after the consumer was reset: the consumer numbers
	// every delivery, a redelivery too, and a reset starts again at 1.
	lastDelivery uint64
	// checked is when an idle fetch last asked the consumer whether it
	// delivered more than lastDelivery (zero: ask at the next idle fetch).
	checked   time.Time
	last      jetstream.Msg
	rows      map[aggKey]agg
	events    uint64
	caughtUp  time.Time // everything published before it has been aggregated
	published time.Time // freshness last written
}

// Run owns partitions until ctx ends, then flushes, acknowledges and
// releases them.
func (w *Worker) Run(ctx context.Context) error {
	owners, err := w.js.KeyValue(ctx, subjects.CounterOwnersBucket)
	if err != nil {
		return fmt.Errorf("counter owners bucket: %w", err)
	}
	fresh, err := w.js.KeyValue(ctx, subjects.CounterFreshnessBucket)
	if err != nil {
		return fmt.Errorf("counter freshness bucket: %w", err)
	}
	r := &runner{w: w, owners: owners, fresh: fresh, parts: map[int]*partition{}, wake: make(chan struct{}, 1)}
	w.log.Info("counter worker started")
	err = r.loop(ctx)
	if errors.Is(err, errCrash) {
		r.stopAll()
		return err
	}
	r.shutdown()
	w.log.Info("counter worker stopped")
	return err
}

type runner struct {
	w      *Worker
	owners jetstream.KeyValue
	fresh  jetstream.KeyValue

	mu    sync.Mutex
	parts map[int]*partition
	wake  chan struct{} // a partition holds MaxRows: flush now
	held  atomic.Int64  // rows held over all partitions
	space chan struct{} // closed after each flush, for paused fetchers
}

func (r *runner) loop(ctx context.Context) error {
	// Leases are renewed, and partitions taken, each on a goroutine of its
	// own: a flush or a take waits for ClickHouse, and a renewal stuck
	// behind them let leases age past the fence under load ("lease too old
	// to flush", partitions dropped and re-read over and over).
	r.heartbeat(ctx)
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.every(bg, subjects.CounterLeaseTTL/6, r.renewAll) }()
	go func() { defer wg.Done(); r.every(bg, subjects.CounterLeaseTTL/6, r.acquire) }()
	defer func() {
		stop()
		wg.Wait()
	}()
	flush := time.NewTicker(r.w.cfg.FlushEvery)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-flush.C:
			if err := r.flush(ctx); errors.Is(err, errCrash) {
				return err
			}
		case <-r.wake:
			if err := r.flush(ctx); errors.Is(err, errCrash) {
				return err
			}
		}
	}
}

// every runs f at once and then every d until ctx ends.
func (r *runner) every(ctx context.Context, d time.Duration, f func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeat tells other workers this one is alive (for their fair share).
func (r *runner) heartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	if _, err := r.owners.Put(ctx, subjects.CounterMemberKey(r.w.cfg.WorkerID), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil && ctx.Err() == nil {
		r.w.log.Warn("counter heartbeat failed", "err", err)
	}
}

// renewAll heartbeats and renews every owned lease. It touches only
// JetStream, never ClickHouse, so it keeps its pace whatever ClickHouse does.
func (r *runner) renewAll(ctx context.Context) {
	r.heartbeat(ctx)
	ctx, cancel := context.WithTimeout(ctx, subjects.CounterLeaseTTL/2)
	defer cancel()
	r.renew(ctx)
}

// acquire takes free partitions up to a fair share of the live workers and
// gives extras back.
func (r *runner) acquire(ctx context.Context) {
	w := r.w
	lctx, cancel := context.WithTimeout(ctx, kvTimeout)
	share := r.share(lctx)
	cancel()
	owned := r.owned()
	if len(owned) > share {
		// Give back the highest partitions; the flush loop releases them
		// after their last flush.
		for _, p := range owned[share:] {
			p.mu.Lock()
			if !p.releasing {
				p.releasing = true
				w.log.Info("releasing partition for rebalance", "partition", p.n)
			}
			p.mu.Unlock()
		}
		return
	}
	for n := 0; n < subjects.CounterPartitions && len(r.owned()) < share && ctx.Err() == nil; n++ {
		if r.get(n) != nil {
			continue
		}
		// Each take has its own time: it reads the watermark from
		// ClickHouse, which may be slow.
		tctx, cancel := context.WithTimeout(ctx, subjects.CounterLeaseTTL/2)
		rev, err := r.owners.Create(tctx, subjects.CounterLeaseKey(n), []byte(w.cfg.WorkerID))
		if err != nil {
			cancel()
			continue // owned by someone else
		}
		if err := r.take(tctx, n, rev); err != nil {
			w.log.Warn("take partition failed", "partition", n, "err", err)
			_ = r.owners.Delete(tctx, subjects.CounterLeaseKey(n), jetstream.LastRevision(rev))
		}
		cancel()
	}
}

// renew extends every owned lease; a partition whose lease cannot be
// renewed is dropped.
func (r *runner) renew(ctx context.Context) {
	for _, p := range r.owned() {
		start := time.Now()
		p.mu.Lock()
		rev := p.rev
		p.mu.Unlock()
		nrev, err := r.owners.Update(ctx, subjects.CounterLeaseKey(p.n), []byte(r.w.cfg.WorkerID), rev)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return // stopping: shutdown renews and releases
			}
			r.w.log.Warn("lost partition lease", "partition", p.n, "err", err)
			r.drop(p)
			continue
		}
		p.mu.Lock()
		p.rev, p.renewed = nrev, start
		p.mu.Unlock()
	}
}

// share is ceil(partitions / live workers).
func (r *runner) share(ctx context.Context) int {
	members := 1
	if lister, err := r.owners.ListKeysFiltered(ctx, subjects.CounterMembers); err == nil {
		n := 0
		for range lister.Keys() {
			n++
		}
		members = max(n, 1)
	}
	return (subjects.CounterPartitions + members - 1) / members
}

// take starts owning partition n: read its watermark, rewind its consumer
// to the first sequence not in ClickHouse, start fetching.
func (r *runner) take(ctx context.Context, n int, rev uint64) error {
	w := r.w
	wm, err := counterdb.PartitionWatermark(ctx, w.ch, w.cfg.Table, n)
	if err != nil {
		return err
	}
	if _, err := w.js.ResetConsumerToSequence(ctx, subjects.CounterStream, subjects.CounterConsumer(n), wm+1); err != nil {
		return fmt.Errorf("reset consumer %s to %d: %w", subjects.CounterConsumer(n), wm+1, err)
	}
	cons, err := w.js.Consumer(ctx, subjects.CounterStream, subjects.CounterConsumer(n))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", subjects.CounterConsumer(n), err)
	}
	// Renew once before going live: the steps above may have taken a while
	// (a slow ClickHouse), and the fence counts from the last renewal.
	renewed := time.Now()
	if rev, err = r.owners.Update(ctx, subjects.CounterLeaseKey(n), []byte(w.cfg.WorkerID), rev); err != nil {
		return fmt.Errorf("renew lease of partition %d after taking it: %w", n, err)
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &partition{n: n, cancel: cancel, done: make(chan struct{}), rev: rev, renewed: renewed,
		flushedWM: wm, seen: wm, rows: map[aggKey]agg{}}
	r.mu.Lock()
	r.parts[n] = p
	r.mu.Unlock()
	w.log.Info("took partition", "partition", n, "watermark", wm)
	go func() {
		defer close(p.done)
		r.fetch(pctx, p, cons)
	}()
	return nil
}

func (r *runner) fetch(ctx context.Context, p *partition, cons jetstream.Consumer) {
	w := r.w
	for ctx.Err() == nil {
		if r.held.Load() >= int64(w.cfg.MaxRows) {
			r.mu.Lock()
			space := r.space
			r.mu.Unlock()
			if space != nil {
				select {
				case <-space:
				case <-ctx.Done():
					return
				case <-time.After(w.cfg.FlushEvery):
				}
			}
			continue
		}
		start := time.Now()
		batch, err := cons.Fetch(w.cfg.FetchBatch, jetstream.FetchMaxWait(w.cfg.FetchWait))
		if err != nil {
			w.log.Warn("fetch failed", "partition", p.n, "err", err)
			sleep(ctx, w.cfg.FetchWait)
			continue
		}
		pending := uint64(0)
		received := 0
		rewind := false
		for msg := range batch.Messages() {
			received++
			md, err := msg.Metadata()
			if err != nil || rewind {
				continue // after a gap, the rest of the batch is read again
			}
			pending = md.NumPending
			if !r.inOrder(p, md) {
				rewind = true
				continue
			}
			r.add(ctx, p, msg, md)
		}
		if rewind {
			r.rewind(ctx, p, "delivery gap")
			continue
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() == nil {
				w.log.Warn("fetch ended with error", "partition", p.n, "err", err)
			}
			continue
		}
		if received == 0 && r.deliveredElsewhere(ctx, p, cons) {
			r.rewind(ctx, p, "deliveries not received")
			continue
		}
		if pending == 0 {
			p.mu.Lock()
			p.caughtUp = start
			p.mu.Unlock()
		}
	}
}

// inOrder reports whether md can be aggregated now. The consumer numbers
// every delivery, a redelivery too, and only this owner pulls from it, so
// each delivery must be the very next one: a hole means a delivery was lost
// on the way (a pull that died with a server, a consumer leader replaced
// after committing a delivery it never sent) and would come back only after
// AckWait, out of order, below the watermark by then and skipped. That holds
// for the first delivery after a reset as well (it must be 1): a pull left
// waiting from before the reset takes that one, and a reset that did not
// take effect shows as the old numbering going on. A copy of a delivery
// already received (numbered at or below the last, and aggregated) is
// harmless and skipped by add.
func (r *runner) inOrder(p *partition, md *jetstream.MsgMetadata) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := md.Sequence.Consumer
	if d == p.lastDelivery+1 {
		p.lastDelivery = d
		return true
	}
	return d <= p.lastDelivery && md.Sequence.Stream <= p.seen
}

// idleCheck is how often, at most, an idle partition asks its consumer
// whether it delivered more than the owner received.
const idleCheck = 2 * time.Second

// deliveredElsewhere reports, after a fetch that returned nothing, whether
// the consumer has delivered more than this owner received. A delivery lost
// at the tail has no later one to show the hole, and a consumer whose
// position moved on during a leader change may have nothing left to deliver
// at all: the partition would sit short until AckWait, or for good. With no
// pull of the owner's open, the consumer's delivered count must equal the
// last delivery received (0 right after a reset); anything else means
// deliveries went elsewhere (or the consumer's state is not the one this
// owner read from), and a rewind reads them again.
func (r *runner) deliveredElsewhere(ctx context.Context, p *partition, cons jetstream.Consumer) bool {
	p.mu.Lock()
	due := time.Since(p.checked) >= idleCheck
	got := p.lastDelivery
	p.mu.Unlock()
	if !due {
		return false
	}
	ictx, cancel := context.WithTimeout(ctx, kvTimeout)
	info, err := cons.Info(ictx)
	cancel()
	if err != nil {
		return false // asked again after the next idle fetch
	}
	p.mu.Lock()
	p.checked = time.Now()
	p.mu.Unlock()
	if info.Delivered.Consumer == got {
		return false
	}
	r.w.log.Warn("consumer's delivered count is not what this owner received", "partition", p.n,
		"delivered", info.Delivered.Consumer, "received", got)
	return true
}

// rewind restarts the partition's consumer right after the last aggregated
// sequence, so the lost deliveries come again, in order. Whether the reset
// took effect (it may be lost with a consumer leader) is checked by what
// follows: the next delivery must be number 1 (inOrder), and an idle
// consumer must report none delivered (deliveredElsewhere); otherwise the
// partition rewinds again.
func (r *runner) rewind(ctx context.Context, p *partition, why string) {
	p.mu.Lock()
	next := p.seen + 1
	p.mu.Unlock()
	r.w.log.Warn(why+"; rewinding partition", "partition", p.n, "from_seq", next)
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := r.w.js.ResetConsumerToSequence(rctx, subjects.CounterStream, subjects.CounterConsumer(p.n), next)
		cancel()
		if err == nil {
			p.mu.Lock()
			p.lastDelivery = 0      // a reset consumer numbers deliveries from 1 again
			p.checked = time.Time{} // verify at the next idle fetch
			p.mu.Unlock()
			return
		}
		r.w.log.Warn("rewind failed; retrying", "partition", p.n, "err", err)
		sleep(ctx, r.w.cfg.FetchWait)
	}
}

// add aggregates one message, or dead-letters it when it is not a valid
// batch of this partition. Sequences already counted are skipped.
func (r *runner) add(ctx context.Context, p *partition, msg jetstream.Msg, md *jetstream.MsgMetadata) {
	w := r.w
	seq := md.Sequence.Stream
	p.mu.Lock()
	seen := p.seen
	p.mu.Unlock()
	if seq <= seen {
		w.Stats.Skipped.Add(1)
		return
	}
	var b subjects.CounterBatch
	err := json.Unmarshal(msg.Data(), &b)
	if err == nil {
		err = b.Validate(p.n)
	} else {
		err = fmt.Errorf("payload is not a counter batch: %w", err)
	}
	if err != nil {
		// Retry the copy until it lands: a bad message is never dropped, and
		// the partition waits rather than skipping it.
		for ctx.Err() == nil {
			if derr := consume.DeadLetter(ctx, w.js, msg, consume.Permanent(err)); derr == nil {
				break
			} else {
				w.log.Error("dead-letter failed; retrying", "partition", p.n, "seq", seq, "err", derr)
				sleep(ctx, time.Second)
			}
		}
		w.Stats.DeadLettered.Add(1)
		w.log.Error("counter batch dead-lettered", "partition", p.n, "seq", seq, "err", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	before := len(p.rows)
	for _, row := range b.Rows {
		if err != nil {
			break
		}
		k := aggKey{row.Tenant, row.VideoID, row.Type, row.Minute}
		a := p.rows[k]
		a.events += row.Count
		a.total += row.Sum
		p.rows[k] = a
		p.events += row.Count
	}
	r.held.Add(int64(len(p.rows) - before))
	p.seen, p.last = seq, msg
	if r.held.Load() >= int64(w.cfg.MaxRows) {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// flushed is one partition's share of a flush.
type flushed struct {
	p        *partition
	rows     map[aggKey]agg
	events   uint64
	from, to uint64
	last     jetstream.Msg
	caughtUp time.Time
}

// flush writes every owned partition's aggregate and watermark in one
// insert, then acknowledges and publishes freshness. A failed insert puts
// the aggregates back for the next attempt.
func (r *runner) flush(ctx context.Context) error {
	w := r.w
	var parts []flushed
	var rows []counterdb.Row
	var wms []counterdb.Watermark
	var events uint64
	for _, p := range r.owned() {
		p.mu.Lock()
		if time.Since(p.renewed) > leaseFence {
			// The lease may have passed to another worker: do not write.
			p.mu.Unlock()
			w.log.Warn("lease too old to flush; dropping partition", "partition", p.n)
			r.drop(p)
			continue
		}
		f := flushed{p: p, rows: p.rows, events: p.events, from: p.flushedWM, to: p.seen, last: p.last, caughtUp: p.caughtUp}
		p.rows, p.events, p.last = map[aggKey]agg{}, 0, nil
		p.mu.Unlock()
		r.held.Add(-int64(len(f.rows)))
		parts = append(parts, f)
		for k, a := range f.rows {
			rows = append(rows, counterdb.Row{Tenant: k.tenant, VideoID: k.video, Type: k.typ,
				Minute: time.Unix(k.minute, 0).UTC(), Events: a.events, Total: a.total})
		}
		events += f.events
		if f.to > f.from {
			wms = append(wms, counterdb.Watermark{Partition: p.n, From: f.from, To: f.to})
		}
	}
	if len(wms) > 0 {
		// The insert is not cancelled with Run's context: an insert cut
		// short has an unknown outcome. Its timeout keeps it inside the
		// lease (renewed less than leaseFence ago, valid for the whole TTL).
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), insertTimeout)
		err := counterdb.Flush(ictx, w.ch, w.cfg.Table, rows, wms)
		cancel()
		if err != nil {
			// Whether the block landed is unknown, so these aggregates can
			// neither be retried (double count) nor dropped alone (loss).
			// Forget the partitions; when their leases expire, the next owner
			// (maybe this worker) reads the watermark the block did or did not
			// write and rewinds the consumer to it.
			w.log.Warn("counter flush failed; partitions will be re-read from the watermark", "rows", len(rows), "err", err)
			for _, f := range parts {
				r.drop(f.p)
			}
			return err
		}
		w.Stats.Flushes.Add(1)
		w.Stats.Rows.Add(uint64(len(rows)))
		w.Stats.Events.Add(events)
		if w.cfg.AfterFlush != nil {
			if err := w.cfg.AfterFlush(); err != nil {
				return errCrash
			}
		}
	}
	r.mu.Lock()
	if r.space != nil {
		close(r.space)
	}
	r.space = make(chan struct{})
	r.mu.Unlock()
	for _, f := range parts {
		p := f.p
		p.mu.Lock()
		p.flushedWM = max(p.flushedWM, f.to)
		releasing := p.releasing
		p.mu.Unlock()
		if f.last != nil {
			if err := f.last.Ack(); err != nil {
				// The next flush's ack covers it; a new owner rewinds to the
				// watermark anyway.
				w.log.Warn("ack after flush failed", "partition", p.n, "err", err)
			}
		}
		r.publishFreshness(ctx, p, f.caughtUp)
		if releasing {
			r.release(ctx, p)
		}
	}
	return nil
}

// publishFreshness records that partition p's events published before
// caughtUp are all in ClickHouse.
func (r *runner) publishFreshness(ctx context.Context, p *partition, caughtUp time.Time) {
	if caughtUp.IsZero() {
		return
	}
	p.mu.Lock()
	stale := !caughtUp.After(p.published)
	p.mu.Unlock()
	if stale {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	if _, err := r.fresh.Put(ctx, subjects.CounterFreshnessKey(p.n), []byte(caughtUp.UTC().Format(time.RFC3339Nano))); err != nil {
		r.w.log.Warn("publish freshness failed", "partition", p.n, "err", err)
		return
	}
	p.mu.Lock()
	p.published = caughtUp
	p.mu.Unlock()
}

// release stops the partition (its aggregate was just flushed and acked)
// and deletes its lease so another worker takes it at once.
func (r *runner) release(ctx context.Context, p *partition) {
	p.cancel()
	<-p.done
	r.mu.Lock()
	delete(r.parts, p.n)
	r.mu.Unlock()
	p.mu.Lock()
	rev := p.rev
	left := len(p.rows)
	p.mu.Unlock()
	r.held.Add(-int64(left))
	// Anything fetched after the last flush is unacked: the next owner
	// rewinds to the watermark and reads it again.
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	if err := r.owners.Delete(ctx, subjects.CounterLeaseKey(p.n), jetstream.LastRevision(rev)); err != nil {
		r.w.log.Warn("release lease", "partition", p.n, "err", err)
	}
	r.w.log.Info("released partition", "partition", p.n)
}

// drop forgets a partition whose lease is lost or stale without writing
// anything: its unflushed messages are unacked and the next owner reads them
// again from the watermark.
func (r *runner) drop(p *partition) {
	p.cancel()
	// Its fetcher must be gone before the partition can be taken again: a
	// pull still open would swallow messages delivered after the rewind.
	<-p.done
	r.mu.Lock()
	delete(r.parts, p.n)
	r.mu.Unlock()
	p.mu.Lock()
	r.held.Add(-int64(len(p.rows)))
	p.rows = map[aggKey]agg{}
	p.mu.Unlock()
}

func (r *runner) owned() []*partition {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*partition, 0, len(r.parts))
	for n := range subjects.CounterPartitions {
		if p := r.parts[n]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

func (r *runner) get(n int) *partition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.parts[n]
}

// stopAll stops fetching without flushing, acking or releasing (a crash).
func (r *runner) stopAll() {
	for _, p := range r.owned() {
		p.cancel()
		<-p.done
	}
}

// shutdown stops fetching, flushes what was fetched, acknowledges it and
// releases every lease so other workers take over at once.
func (r *runner) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parts := r.owned()
	for _, p := range parts {
		p.cancel()
	}
	for _, p := range parts {
		<-p.done
		p.mu.Lock()
		p.releasing = true
		p.mu.Unlock()
	}
	// Renew first so the fence lets the final flush through.
	r.renew(ctx)
	if err := r.flush(ctx); err != nil {
		r.w.log.Warn("final flush failed; the next owner replays from the watermark", "err", err)
		for _, p := range r.owned() {
			r.release(ctx, p)
		}
	}
	_ = r.owners.Delete(ctx, subjects.CounterMemberKey(r.w.cfg.WorkerID))
}

// ID is the worker's id, as written in the partition leases.
func (w *Worker) ID() string { return w.cfg.WorkerID }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
