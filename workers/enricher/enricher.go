// Package enricher is the Enricher worker role (seed 004): it reads user,
// subscription and lesson events from the INPUT stream, one partition at a
// time and in order, keeps the current user and subscription state in
// sharded KV buckets, and emits every event on OUTPUT, lessons enriched with
// subscription_status and subscription_type (from the user's subscription
// in the lesson's language) and country (from the user).
//
// Rules:
//   - An invalid event (see enricherevents.Parse) is dead-lettered with the
//     validation errors; the partition goes on.
//   - A user or subscription event updates the state (an update changes only
//     the fields it carries) and passes through unchanged. The state records
//     the INPUT sequence of the last event applied, so an older event seen
//     again (redelivered after a takeover) never overwrites a newer state.
//   - A lesson is enriched with the state as of its own place in its user's
//     stream (the seed guarantees per-user order), at once: a lesson whose
//     user is unknown comes out with enrichment = missing_user (whether or
//     not the subscription is known: the user label wins), one whose user
//     is known but has no subscription in the lesson's language with
//     missing_subscription; the unknown fields are null. State from events
//     after the lesson never reaches it, and output order per user is
//     input order.
//   - Holding (Config.Hold > 0) is an opt-in for producers that cannot keep
//     the seed's order: a lesson missing a dimension is held for up to Hold
//     (from the time INPUT stored it), what was known at its first attempt
//     is frozen and only the missing dimension may be filled by the user's
//     later events. Those later events still update the state at once but
//     come out only after the held lesson (per-user order is kept); how
//     long events waited is the jetfleet_enricher_hold_seconds histogram.
//   - Output is exactly once: each emitted event carries
//     Nats-Msg-Id = enricher:<partition>.<sequence in the partition's
//     stream>, so a redelivered input
//     (a crash between publish and ack) is dropped by OUTPUT's duplicate
//     window.
//   - When KV is unavailable the handler fails transiently: the runtime
//     retries the event with backoff, holding the events behind it, so the
//     partition resumes there.
package enricher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/enricherevents"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// MsgIDPrefix starts the Nats-Msg-Id of every emitted event, followed by
// the input's position (subjects.EnricherInputPos: partition.sequence); it
// is the only header added (an input's subjects.EnricherOwnerHeader is
// passed on as is).
const MsgIDPrefix = "enricher:"

// InputOf returns the input position an emitted event came from, from its
// Nats-Msg-Id.
func InputOf(h nats.Header) (partition int, seq uint64, ok bool) {
	pos, ok := strings.CutPrefix(h.Get(jetstream.MsgIDHeader), MsgIDPrefix)
	if !ok {
		return 0, 0, false
	}
	ps, ss, ok := strings.Cut(pos, ".")
	p, err1 := strconv.Atoi(ps)
	n, err2 := strconv.ParseUint(ss, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return p, n, true
}

// Config tunes the Enricher.
type Config struct {
	// Hold, when positive, turns holding on (for producers that cannot
	// keep the seed's per-user order): a lesson with an unknown user or
	// subscription is held for up to Hold from the time INPUT stored it,
	// and its user's later events come out after it. Zero, the default,
	// enriches every lesson at once from the state at its place in the
	// stream. It must stay well under subjects.EnricherOutputDuplicates.
	Hold time.Duration
	// ParkRetry is how often a held event is retried; default 2s.
	ParkRetry time.Duration
	// CacheSize is the number of state records cached in all; default
	// 500,000.
	CacheSize int
	// KVTimeout bounds one state read or write; default 2s.
	KVTimeout time.Duration
}

func (c *Config) setDefaults() error {
	if c.Hold < 0 || c.ParkRetry < 0 || c.CacheSize < 0 || c.KVTimeout < 0 {
		return fmt.Errorf("enricher config: durations and sizes must not be negative")
	}
	if c.Hold >= subjects.EnricherMaxHold {
		return fmt.Errorf("ENRICHER_HOLD: %v must stay under %v (OUTPUT's duplicate window less the ack wait)",
			c.Hold, subjects.EnricherMaxHold)
	}
	if c.ParkRetry == 0 {
		c.ParkRetry = 2 * time.Second
	}
	if c.CacheSize == 0 {
		c.CacheSize = 500_000
	}
	if c.KVTimeout == 0 {
		c.KVTimeout = 2 * time.Second
	}
	return nil
}

// Enricher handles INPUT events; Handle is its consume.OrderedHandler.
type Enricher struct {
	cfg     Config
	pub     jetstream.JetStream // with a publish window for every partition's batch
	store   *Store
	metrics *metrics
	log     *slog.Logger
	now     func() time.Time

	mu   sync.Mutex
	pins []string // last Nats-Pin-Id seen per partition

	// parsed holds, per partition, the events Prepare parsed for Handle,
	// by INPUT sequence. Each map is used only by its partition's
	// goroutine.
	parsed  []map[uint64]parsed
	scratch []prepareScratch
	// holds are, per partition, the events held back (Config.Hold > 0);
	// each is used only by its partition's goroutine.
	holds []*holds
	// held is subjects.EnricherHeldBucket when holding is on, else nil.
	held jetstream.KeyValue
}

// New opens the state store and returns the Enricher. reg may be nil.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Enricher, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	store, err := OpenStore(ctx, js, cfg.CacheSize, cfg.KVTimeout)
	if err != nil {
		return nil, err
	}
	// Every partition may have a whole batch of outputs unconfirmed: a
	// smaller async window would stall the publishes (the default is 4000).
	pub, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncMaxPending(publishWindow))
	if err != nil {
		return nil, fmt.Errorf("enricher publisher: %w", err)
	}
	var held jetstream.KeyValue
	if cfg.Hold > 0 {
		if held, err = js.KeyValue(ctx, subjects.EnricherHeldBucket); err != nil {
			_ = store.Close()
			return nil, fmt.Errorf("ENRICHER_HOLD needs bucket %s (provision first: jetfleet migrate): %w", subjects.EnricherHeldBucket, err)
		}
	}
	m := newMetrics(store)
	if reg != nil {
		if err := m.register(reg); err != nil {
			return nil, err
		}
	}
	return &Enricher{
		cfg: cfg, pub: pub, store: store, metrics: m, log: log, now: time.Now,
		pins: make([]string, subjects.EnricherPartitions), parsed: parsedMaps(),
		scratch: make([]prepareScratch, subjects.EnricherPartitions), holds: newHolds(), held: held,
	}, nil
}

func parsedMaps() []map[uint64]parsed {
	m := make([]map[uint64]parsed, subjects.EnricherPartitions)
	for i := range m {
		m[i] = map[uint64]parsed{}
	}
	return m
}

// Close releases what New opened (the state store's reply subscription).
// Call it after the runtime running Handle stopped.
func (e *Enricher) Close() error { return e.store.Close() }

// Store is the Enricher's state store.
func (e *Enricher) Store() *Store { return e.store }

// Stats returns what the Enricher counted so far.
func (e *Enricher) Stats() Stats {
	s := e.metrics.stats()
	s.CacheHits, s.CacheMiss = e.store.CacheStats()
	return s
}

// OrderedConfig is the runtime configuration of the Enricher's partitions.
func (e *Enricher) OrderedConfig(role string) consume.OrderedConfig {
	var names []string
	for p := range subjects.EnricherPartitions {
		names = append(names, subjects.EnricherPartitionConsumer(p))
	}
	return consume.OrderedConfig{Role: role, Streams: subjects.EnricherPartitionStreams(), Consumers: names, Group: subjects.EnricherGroup,
		Batch: batchSize, Prepare: e.Prepare}
}

const (
	// batchSize is the most events of one partition fetched and handled
	// at a time.
	batchSize = 256
	// publishWindow bounds the outputs awaiting their acks: twice a batch
	// of every partition.
	publishWindow = 2 * batchSize * subjects.EnricherPartitions
)

// parsed is an event parsed by Prepare for Handle.
type parsed struct {
	ev  subjects.EnricherEvent
	err error
	// plain is an event without members named like the enrichment
	// fields: a lesson's fields are appended without searching for them.
	plain bool
}

// Prepare parses a fetched batch of partition p once and loads the state
// its events need, concurrently, into the cache: Handle then finds it there
// instead of making one KV round trip per miss, in sequence. Only reads: the
// order of state changes is Handle's.
func (e *Enricher) Prepare(ctx context.Context, p int, msgs []jetstream.Msg) {
	m := e.parsed[p]
	clear(m)
	if len(msgs) == 0 {
		return
	}
	// One fetch, one pin: check the owner once per batch, before loading
	// into a cache it may drop.
	e.checkOwner(p, msgs[0].Headers().Get("Nats-Pin-Id"))
	// The partition's scratch, reused from batch to batch.
	sc := &e.scratch[p]
	if sc.seenU == nil {
		sc.seenU, sc.seenS = map[string]bool{}, map[SubKey]bool{}
	}
	clear(sc.seenU)
	clear(sc.seenS)
	users, subs, seenU, seenS := sc.users[:0], sc.subs[:0], sc.seenU, sc.seenS
	for _, msg := range msgs {
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		ev, err := sc.parser.ParseKeys(subjects.EnricherStoredKind(msg.Subject()), msg.Data())
		m[md.Sequence.Stream] = parsed{ev: ev, err: err, plain: err == nil && !sc.parser.HasAny(enrichmentNames...)}
		if err != nil {
			continue
		}
		u := ev.UserUUID()
		if ev.Kind != subjects.EnricherKindSubscription && !seenU[u] {
			seenU[u] = true
			users = append(users, u)
		}
		var k SubKey
		switch {
		case ev.Lesson != nil:
			k = SubKey{UserUUID: u, Language: ev.Lesson.Language}
		case ev.Subscription != nil:
			k = SubKey{UserUUID: u, Language: ev.Subscription.Language}
		default:
			continue
		}
		if !seenS[k] {
			seenS[k] = true
			subs = append(subs, k)
		}
	}
	e.store.Prefetch(ctx, p, users, subs)
	sc.users, sc.subs = users, subs
}

// prepareScratch is what Prepare reuses for each batch of one partition.
type prepareScratch struct {
	parser enricherevents.Parser
	users  []string
	subs   []SubKey
	seenU  map[string]bool
	seenS  map[SubKey]bool
}

// Handle processes one INPUT event of partition p.
func (e *Enricher) Handle(ctx context.Context, p int, msg jetstream.Msg) ([]jetstream.PubAckFuture, error) {
	md, err := msg.Metadata()
	if err != nil {
		return nil, consume.Permanentf("not a JetStream message: %w", err)
	}
	kind := subjects.EnricherStoredKind(msg.Subject())
	// Prepare parsed it already (and checked the owner), unless the runtime
	// has no Prepare step.
	pe, ok := e.parsed[p][md.Sequence.Stream]
	if ok {
		delete(e.parsed[p], md.Sequence.Stream)
	} else {
		e.checkOwner(p, msg.Headers().Get("Nats-Pin-Id"))
		pe.ev, pe.err = e.scratch[p].parser.ParseKeys(kind, msg.Data())
		pe.plain = pe.err == nil && !e.scratch[p].parser.HasAny(enrichmentNames...)
	}
	ev, err := pe.ev, pe.err
	if err != nil {
		e.metrics.invalid.WithLabelValues(kind).Inc()
		return nil, consume.Permanent(err)
	}
	if got := subjects.EnricherPartitionOf(ev.UserUUID()); got != p {
		e.metrics.invalid.WithLabelValues(kind).Inc()
		return nil, consume.Permanentf("invalid event: published under another user's subject: the body's user %q belongs to partition %d, the subject's to %d (publish to %s)",
			ev.UserUUID(), got, p, subjects.EnricherInput(kind, ev.UserUUID()))
	}
	seq := md.Sequence.Stream
	out := msg.Data()
	var en *enrichment // a lesson's
	switch kind {
	case subjects.EnricherKindUser:
		err = e.applyUser(ctx, p, ev.User, seq)
	case subjects.EnricherKindSubscription:
		err = e.applySubscription(ctx, p, ev.Subscription, seq)
	case subjects.EnricherKindLesson:
		en, err = e.enrichment(ctx, p, ev.Lesson, seq, md.NumDelivered > 1)
	}
	if err != nil {
		return nil, err
	}
	waited := false
	if e.cfg.Hold > 0 {
		// Holding decides after the state was updated: a held lesson's
		// missing dimension may come from the events behind it.
		if waited, err = e.holdBack(ctx, p, ev.UserUUID(), seq, md.Timestamp, en); err != nil {
			return nil, err
		}
	}
	if en != nil {
		status := en.status()
		if out, err = render(msg.Data(), en.fields(status), pe.plain); err != nil {
			return nil, err
		}
		e.metrics.lesson(status).Inc()
	}
	if waited {
		e.metrics.held(kind).Observe(e.now().Sub(md.Timestamp).Seconds())
	}
	// The header map is built directly: Header.Set would canonicalize
	// the name on every event, and it is canonical already.
	pub := &nats.Msg{Subject: subjects.EnricherOutput(kind), Data: out, Header: nats.Header{
		jetstream.MsgIDHeader: {MsgIDPrefix + subjects.EnricherInputPos(p, seq)},
	}}
	if owner := msg.Headers()[subjects.EnricherOwnerHeader]; len(owner) > 0 {
		pub.Header[subjects.EnricherOwnerHeader] = owner[:1]
	}
	f, err := e.pub.PublishMsgAsync(pub)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", pub.Subject, err)
	}
	e.metrics.emit(kind).Inc()
	return []jetstream.PubAckFuture{f}, nil
}

// checkOwner drops partition p's cache when the partition was pinned to
// another client since this one last saw it.
func (e *Enricher) checkOwner(p int, pin string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if pin != "" && pin != e.pins[p] {
		if e.pins[p] != "" {
			e.store.Forget(p)
			e.holds[p].reset() // what another owner did meanwhile is not known here
		}
		e.pins[p] = pin
	}
}

func (e *Enricher) applyUser(ctx context.Context, p int, ev *subjects.EnricherUserEvent, seq uint64) error {
	u, err := e.store.User(ctx, p, ev.UUID)
	if err != nil {
		return err
	}
	if u == nil {
		u = &subjects.EnricherUserState{}
	} else if u.Seq >= seq {
		e.metrics.stale.WithLabelValues(subjects.EnricherKindUser).Inc()
		return nil // already applied: pass through only
	}
	u.Apply(ev, seq)
	return e.store.PutUser(ctx, p, u)
}

func (e *Enricher) applySubscription(ctx context.Context, p int, ev *subjects.EnricherSubscriptionEvent, seq uint64) error {
	s, err := e.store.Subscription(ctx, p, ev.UserUUID, ev.Language)
	if err != nil {
		return err
	}
	if s == nil {
		s = &subjects.EnricherSubscriptionState{}
	} else if s.Seq >= seq {
		e.metrics.stale.WithLabelValues(subjects.EnricherKindSubscription).Inc()
		return nil
	}
	s.Apply(ev, seq)
	return e.store.PutSubscription(ctx, p, s)
}

// enrichment is what a lesson is enriched with (as JSON, a frozen record in
// subjects.EnricherHeldBucket).
type enrichment struct {
	UserKnown bool    `json:"user_known"`
	SubKnown  bool    `json:"subscription_known"`
	Country   *string `json:"country,omitempty"`
	SubStatus *string `json:"subscription_status,omitempty"`
	SubType   *string `json:"subscription_type,omitempty"`
}

func (en *enrichment) setUser(u *subjects.EnricherUserState) {
	if u != nil {
		en.UserKnown, en.Country = true, u.Country
	}
}

func (en *enrichment) setSubscription(s *subjects.EnricherSubscriptionState) {
	if s != nil {
		en.SubKnown, en.SubStatus, en.SubType = true, s.SubscriptionStatus, s.SubscriptionType
	}
}

// status is the lesson's enrichment label. An unknown user wins over an
// unknown subscription: the subscription fields, null or not, say whether
// the subscription was known.
func (en *enrichment) status() string {
	switch {
	case !en.UserKnown:
		return subjects.EnrichmentMissingUser
	case !en.SubKnown:
		return subjects.EnrichmentMissingSubscription
	}
	return subjects.EnrichmentComplete
}

func (en *enrichment) fields(status string) subjects.EnrichedLessonFields {
	return subjects.EnrichedLessonFields{SubscriptionStatus: en.SubStatus, SubscriptionType: en.SubType,
		Country: en.Country, Enrichment: status}
}

// enrichment returns the lesson's enrichment from the state as it is now:
// the state at the lesson's place in its user's stream, since the
// partition's events are handled in order. A lesson held back (Hold) keeps
// what was found at its first attempt; only what was missing is looked up
// again.
func (e *Enricher) enrichment(ctx context.Context, p int, l *subjects.EnricherLessonEvent, seq uint64, redelivered bool) (*enrichment, error) {
	en, frozen := e.holds[p].frozen[seq]
	if !frozen && redelivered && e.held != nil {
		// Held by another owner before a takeover (or by this one before
		// it lost the partition): its frozen record is in KV.
		var err error
		if en, frozen, err = e.loadFrozen(ctx, p, seq); err != nil {
			return nil, err
		}
	}
	if !en.UserKnown {
		u, err := e.store.User(ctx, p, l.UserUUID)
		if err != nil {
			return nil, err
		}
		en.setUser(u)
	}
	if !en.SubKnown {
		s, err := e.store.Subscription(ctx, p, l.UserUUID, l.Language)
		if err != nil {
			return nil, err
		}
		en.setSubscription(s)
	}
	if frozen {
		e.holds[p].frozen[seq] = en
	}
	return &en, nil
}

// render returns the lesson with the enrichment fields added.
// plain says the lesson has no members of those names (the parser saw
// them all), so they need not be searched for.
func render(raw []byte, add subjects.EnrichedLessonFields, plain bool) ([]byte, error) {
	if out, ok := splice(raw, add, plain); ok {
		return out, nil
	}
	// The producer sent fields of the same names: replace them.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, consume.Permanentf("invalid event: %w", err) // ParseEvent accepted it: cannot happen
	}
	fields[subjects.EnricherFieldSubscriptionStatus] = marshal(add.SubscriptionStatus)
	fields[subjects.EnricherFieldSubscriptionType] = marshal(add.SubscriptionType)
	fields[subjects.EnricherFieldCountry] = marshal(add.Country)
	fields[subjects.EnricherFieldEnrichment] = marshal(add.Enrichment)
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode enriched lesson: %w", err)
	}
	return out, nil
}

var enrichmentNames = []string{subjects.EnricherFieldSubscriptionStatus, subjects.EnricherFieldSubscriptionType,
	subjects.EnricherFieldCountry, subjects.EnricherFieldEnrichment}

var enrichmentKeys = [][]byte{
	[]byte(`"` + subjects.EnricherFieldSubscriptionStatus + `"`), []byte(`"` + subjects.EnricherFieldSubscriptionType + `"`),
	[]byte(`"` + subjects.EnricherFieldCountry + `"`), []byte(`"` + subjects.EnricherFieldEnrichment + `"`),
}

// splice appends the enrichment fields to the lesson's JSON object without
// decoding it again (the hot path). It declines (false) when the object may
// already hold one of those fields, which must then be replaced, not
// repeated.
func splice(raw []byte, add subjects.EnrichedLessonFields, plain bool) ([]byte, bool) {
	for _, k := range enrichmentKeys {
		if !plain && bytes.Contains(raw, k) {
			return nil, false
		}
	}
	t := bytes.TrimRight(raw, " \t\r\n")
	if len(t) < 2 || t[len(t)-1] != '}' {
		return nil, false
	}
	out := make([]byte, 0, len(t)+128)
	out = append(out, t[:len(t)-1]...)
	if len(bytes.TrimSpace(t[1:len(t)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"subscription_status":`...)
	out = appendJSON(out, add.SubscriptionStatus)
	out = append(out, `,"subscription_type":`...)
	out = appendJSON(out, add.SubscriptionType)
	out = append(out, `,"country":`...)
	out = appendJSON(out, add.Country)
	out = append(out, `,"enrichment":`...)
	out = appendJSON(out, &add.Enrichment)
	return append(out, '}'), true
}

// appendJSON appends s as a JSON string, or null.
func appendJSON(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	for i := 0; i < len(*s); i++ {
		if c := (*s)[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return append(b, marshal(*s)...)
		}
	}
	b = append(b, '"')
	b = append(b, *s...)
	return append(b, '"')
}

func marshal(v any) json.RawMessage {
	b, _ := json.Marshal(v) // strings and nil pointers only
	return b
}
