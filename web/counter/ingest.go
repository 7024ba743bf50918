package counter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"jetfleet/subjects"
)

// IngestConfig tunes the edge's buffering and batching. Zero values take the
// defaults.
type IngestConfig struct {
	// Linger is how long a partition's batcher waits for more rows from
	// other requests before publishing; default 2ms.
	Linger time.Duration
	// MaxRows caps the rows of one message (about 80 bytes each); default 2000.
	MaxRows int
	// Attempts is how often one message is published before the requests
	// waiting on it fail (same Nats-Msg-Id, so a retry never doubles);
	// default 4.
	Attempts int
	// AckTimeout bounds one publish attempt; default 2s.
	AckTimeout time.Duration
}

func (c *IngestConfig) setDefaults() {
	if c.Linger <= 0 {
		c.Linger = 2 * time.Millisecond
	}
	if c.MaxRows <= 0 {
		c.MaxRows = 2000
	}
	if c.Attempts <= 0 {
		c.Attempts = 4
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 2 * time.Second
	}
}

// ErrUnavailable means JetStream did not acknowledge in time: nothing is
// promised about the events, the client should retry (with its idempotency
// keys, to be safe).
var ErrUnavailable = errors.New("event stream unavailable")

// Ingest publishes counter rows to the VIEWS partitions. Rows without an
// idempotency key go through one batcher per partition that merges the rows
// of concurrent requests, collapses repeats of (tenant, video, type, minute)
// and publishes one message; each request returns once every message holding
// its rows is acknowledged by JetStream. Keyed events are published one per
// message with Nats-Msg-Id keyMsgID(tenant, key), so the stream's duplicate
// window counts a resent key once, whichever edge receives it.
type Ingest struct {
	cfg IngestConfig
	js  jetstream.JetStream
	log *slog.Logger
	in  [subjects.CounterPartitions]chan *submission
}

type submission struct {
	rows []subjects.CounterRow
	done chan error
}

// NewIngest starts the batchers; they stop when ctx ends.
func NewIngest(ctx context.Context, js jetstream.JetStream, cfg IngestConfig, log *slog.Logger) *Ingest {
	cfg.setDefaults()
	in := &Ingest{cfg: cfg, js: js, log: log}
	for p := range in.in {
		in.in[p] = make(chan *submission, 1024)
		go in.batch(ctx, p)
	}
	return in
}

// Keyed is an event with its client idempotency key, already collapsed to
// one row.
type Keyed struct {
	Key string
	Row subjects.CounterRow
	msg *nats.Msg // set for a chunk of a keyed request
}

// Result says what happened to the keyed events of a Publish.
type Result struct {
	Duplicates []int // indexes into keyed of events already counted under their key
	// RequestDuplicate is set when the request key was seen before: the
	// request's unkeyed events were already counted.
	RequestDuplicate bool
}

// Publish publishes rows (any partitions) and keyed events and returns when
// JetStream has acknowledged all of them, or with ErrUnavailable.
//
// requestKey, when set, is the client's idempotency key of the whole
// request: its rows are then not merged with other requests but published
// per partition under Nats-Msg-Id requestMsgID(tenant, key, partition,
// chunk), so a retried request is counted once (Result.RequestDuplicate).
func (in *Ingest) Publish(ctx context.Context, rows []subjects.CounterRow, keyed []Keyed, requestKey string) (Result, error) {
	var res Result
	byPart := map[int][]subjects.CounterRow{}
	for _, r := range rows {
		p := subjects.CounterPartition(r.VideoID)
		byPart[p] = append(byPart[p], r)
	}
	if requestKey != "" {
		for p, rs := range byPart {
			for chunk, start := 0, 0; start < len(rs); chunk, start = chunk+1, start+in.cfg.MaxRows {
				end := min(start+in.cfg.MaxRows, len(rs))
				data, _ := json.Marshal(subjects.CounterBatch{Rows: rs[start:end]})
				m := nats.NewMsg(subjects.CounterSubject(p))
				m.Data = data
				m.Header.Set(jetstream.MsgIDHeader, requestMsgID(rs[0].Tenant, requestKey, p, chunk))
				keyed = append(keyed, Keyed{msg: m})
			}
		}
		byPart = nil
	}
	var subs []*submission
	for p, rs := range byPart {
		s := &submission{rows: rs, done: make(chan error, 1)}
		select {
		case in.in[p] <- s:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		subs = append(subs, s)
	}
	// Keyed events: async publishes in parallel with the batches.
	futures := make([]jetstream.PubAckFuture, len(keyed))
	msgs := make([]*nats.Msg, len(keyed))
	for i, k := range keyed {
		if k.msg != nil {
			msgs[i] = k.msg
			continue
		}
		data, _ := json.Marshal(subjects.CounterBatch{Rows: []subjects.CounterRow{k.Row}})
		m := nats.NewMsg(subjects.CounterSubject(subjects.CounterPartition(k.Row.VideoID)))
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, keyMsgID(k.Row.Tenant, k.Key))
		msgs[i] = m
	}
	var firstErr error
	for i := range keyed {
		f, err := in.js.PublishMsgAsync(msgs[i])
		if err != nil {
			firstErr = err
			break
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			break
		}
		ack, err := in.await(ctx, f, msgs[i])
		if err != nil {
			firstErr = err
			continue
		}
		switch {
		case ack.Duplicate && keyed[i].msg != nil:
			res.RequestDuplicate = true
		case ack.Duplicate:
			res.Duplicates = append(res.Duplicates, i)
		}
	}
	for _, s := range subs {
		select {
		case err := <-s.done:
			if err != nil && firstErr == nil {
				firstErr = err
			}
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	if firstErr != nil {
		return res, fmt.Errorf("%w: %v", ErrUnavailable, firstErr)
	}
	return res, nil
}

// keyMsgID is the Nats-Msg-Id of an event with an idempotency key:
// "key:<len(tenant)>:<tenant>:<key>". The length says where the tenant ends,
// so no two (tenant, key) pairs share an id even when tenants or keys hold
// ":" (tenant "a" + key "x:k1" is "key:1:a:x:k1", tenant "a:x" + key "k1"
// is "key:3:a:x:k1").
func keyMsgID(tenant, key string) string {
	return "key:" + strconv.Itoa(len(tenant)) + ":" + tenant + ":" + key
}

// requestMsgID is the Nats-Msg-Id of chunk chunk of partition p of a request
// with an Idempotency-Key: "req:<len(tenant)>:<tenant>:<key>:<p>:<chunk>".
// The length fixes the tenant's end and the two trailing numbers hold no
// ":", so the key between them is fixed too.
func requestMsgID(tenant, key string, p, chunk int) string {
	return fmt.Sprintf("req:%d:%s:%s:%d:%d", len(tenant), tenant, key, p, chunk)
}

// await waits for f's ack, republishing m (same message id) on failure.
func (in *Ingest) await(ctx context.Context, f jetstream.PubAckFuture, m *nats.Msg) (*jetstream.PubAck, error) {
	var lastErr error
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(in.cfg.AckTimeout)
		select {
		case ack := <-f.Ok():
			t.Stop()
			return ack, nil
		case err := <-f.Err():
			lastErr = err
		case <-t.C:
			lastErr = errors.New("no ack within " + in.cfg.AckTimeout.String())
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
		if attempt >= in.cfg.Attempts {
			return nil, lastErr
		}
		in.log.Warn("counter publish not acknowledged; retrying", "subject", m.Subject, "attempt", attempt, "err", lastErr)
		nf, err := in.js.PublishMsgAsync(m)
		if err != nil {
			lastErr = err
			continue
		}
		f = nf
	}
}

// batch is partition p's batcher: gather submissions for Linger (or until
// MaxRows), collapse, publish, and tell every waiting request.
func (in *Ingest) batch(ctx context.Context, p int) {
	subject := subjects.CounterSubject(p)
	for {
		var first *submission
		select {
		case first = <-in.in[p]:
		case <-ctx.Done():
			return
		}
		waiting := []*submission{first}
		collapsed := newCollapser()
		collapsed.add(first.rows)
		linger := time.NewTimer(in.cfg.Linger)
	gather:
		for collapsed.len() < in.cfg.MaxRows {
			select {
			case s := <-in.in[p]:
				waiting = append(waiting, s)
				collapsed.add(s.rows)
			case <-linger.C:
				break gather
			}
		}
		linger.Stop()
		rows := collapsed.rows()
		// Publish in chunks of MaxRows; acks are awaited off this goroutine
		// so the next batch is gathered meanwhile.
		var futures []jetstream.PubAckFuture
		var msgs []*nats.Msg
		var err error
		for start := 0; start < len(rows); start += in.cfg.MaxRows {
			end := min(start+in.cfg.MaxRows, len(rows))
			data, _ := json.Marshal(subjects.CounterBatch{Rows: rows[start:end]})
			m := nats.NewMsg(subject)
			m.Data = data
			m.Header.Set(jetstream.MsgIDHeader, "batch:"+nuid.Next())
			f, perr := in.js.PublishMsgAsync(m)
			if perr != nil {
				err = perr
				break
			}
			futures = append(futures, f)
			msgs = append(msgs, m)
		}
		go func() {
			for i, f := range futures {
				if _, aerr := in.await(context.WithoutCancel(ctx), f, msgs[i]); aerr != nil && err == nil {
					err = aerr
				}
			}
			for _, s := range waiting {
				s.done <- err
			}
		}()
	}
}

// collapser adds up rows with the same (tenant, video, type, minute).
type collapser struct {
	idx  map[rowKey]int
	list []subjects.CounterRow
}

type rowKey struct {
	tenant, video string
	typ           subjects.CounterType
	minute        int64
}

func newCollapser() *collapser { return &collapser{idx: map[rowKey]int{}} }

func (c *collapser) add(rows []subjects.CounterRow) {
	for _, r := range rows {
		k := rowKey{r.Tenant, r.VideoID, r.Type, r.Minute}
		if i, ok := c.idx[k]; ok {
			c.list[i].Count += r.Count
			c.list[i].Sum += r.Sum
			continue
		}
		c.idx[k] = len(c.list)
		c.list = append(c.list, r)
	}
}

func (c *collapser) len() int                    { return len(c.list) }
func (c *collapser) rows() []subjects.CounterRow { return c.list }

// Collapse adds up rows with the same (tenant, video, type, minute).
func Collapse(rows []subjects.CounterRow) []subjects.CounterRow {
	c := newCollapser()
	c.add(rows)
	return c.rows()
}
