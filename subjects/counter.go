package subjects

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
)

// Counter API (seed 002): the edge validates events, collapses them per
// (tenant, video, type, minute) and publishes CounterBatch messages on
// CounterSubject(CounterPartition(video)); counter workers own partitions,
// aggregate and flush to ClickHouse.
const (
	// CounterStream keeps the raw (collapsed) counter batches for
	// CounterRetention so rollups can be rebuilt, and dedupes publishes that
	// carry the same Nats-Msg-Id within CounterDedupeWindow.
	CounterStream = "VIEWS"
	// CounterPartitions is the number of partitions of CounterStream. It is
	// part of the contract: changing it moves videos between partitions and
	// needs a drained stream.
	CounterPartitions = 16
	// CounterDefaultRetention is the default raw-event retention.
	CounterDefaultRetention = 7 * 24 * time.Hour
	// CounterDedupeWindow is how long a resent event with the same
	// idempotency key is recognised and counted once.
	CounterDedupeWindow = time.Hour
	// CounterAPIKeysBucket maps the SHA-256 of an API key (hex) to its
	// apikeys.Record. The key itself is never stored. It also holds
	// the index of the keys a person created (CounterOwnerKey).
	CounterAPIKeysBucket = "COUNTER_APIKEYS"
	// CounterOwnersBucket holds partition leases (owner.<p>) and worker
	// heartbeats (member.<id>); every key lives CounterLeaseTTL after its
	// last update.
	CounterOwnersBucket = "COUNTER_OWNERS"
	// CounterLeaseTTL is how long an owner's lease survives without renewal:
	// the failover time after a worker crash.
	CounterLeaseTTL = 6 * time.Second
	// CounterFreshnessBucket holds, per partition (key p.<n>), the time up to
	// which every acknowledged event of that partition is in ClickHouse
	// (RFC 3339 with nanoseconds), written by the partition's owner after
	// each flush.
	CounterFreshnessBucket = "COUNTER_FRESHNESS"

	counterSubjectPrefix = "views."
	// CounterAll matches every partition subject.
	CounterAll = counterSubjectPrefix + "*"
)

// CounterPartition is the partition of a video: FNV-1a (32 bit) of the video
// id modulo CounterPartitions. Producers and consumers must both use it.
func CounterPartition(videoID string) int {
	h := fnv.New32a()
	h.Write([]byte(videoID))
	return int(h.Sum32() % CounterPartitions)
}

// CounterSubject is the subject of partition p: views.<p>.
func CounterSubject(p int) string { return counterSubjectPrefix + strconv.Itoa(p) }

// CounterConsumer is the durable consumer of partition p: counter-<p>. Its
// position is reset by the partition's owner to the ClickHouse watermark when
// it takes the partition over.
func CounterConsumer(p int) string { return fmt.Sprintf("counter-%02d", p) }

// CounterLeaseKey is the owners-bucket key of partition p's lease.
func CounterLeaseKey(p int) string { return "owner." + strconv.Itoa(p) }

// CounterOwnerPrefix starts every owner-index key of the API keys bucket;
// no key hash (hex) does.
const CounterOwnerPrefix = "owner."

// CounterOwnerKey is the API-keys-bucket key of index slot n of user uid:
// owner.<uid>.<n>. Its value names the hash of one key of theirs.
func CounterOwnerKey(uid string, n int) string {
	return CounterOwnerPrefix + uid + "." + strconv.Itoa(n)
}

// CounterOwnerKeys matches every index slot of user uid.
func CounterOwnerKeys(uid string) string { return CounterOwnerPrefix + uid + ".*" }

// CounterMemberKey is the owners-bucket key of a live worker's heartbeat.
func CounterMemberKey(id string) string { return "member." + id }

// CounterMembers matches every worker heartbeat key.
const CounterMembers = "member.*"

// CounterFreshnessKey is the freshness-bucket key of partition p.
func CounterFreshnessKey(p int) string { return "p." + strconv.Itoa(p) }

func counterAssets(o Options) assetSet {
	r := o.replicas()
	retention := o.CounterRetention
	if retention <= 0 {
		retention = CounterDefaultRetention
	}
	var consumers []jetstream.ConsumerConfig
	for p := range CounterPartitions {
		consumers = append(consumers, jetstream.ConsumerConfig{
			Durable:       CounterConsumer(p),
			Description:   "counter role: partition " + strconv.Itoa(p) + " (one owner at a time, by lease)",
			FilterSubject: CounterSubject(p),
			DeliverPolicy: jetstream.DeliverAllPolicy,
			// One ack per flush acknowledges everything before it.
			AckPolicy: jetstream.AckAllPolicy,
			// The owner acks after each ~1 s flush; a redelivery while it
			// waits for ClickHouse is skipped by sequence. A delivery lost
			// with a server comes back after AckWait (or at once when the
			// owner sees the hole in the delivery sequence and rewinds).
			AckWait:       15 * time.Second,
			MaxDeliver:    -1,
			MaxAckPending: 100_000,
			Replicas:      r,
		})
	}
	return assetSet{
		Streams: []jetstream.StreamConfig{{
			Name:        CounterStream,
			Description: "Counter API raw batches, partitioned by video id hash (views.<p>)",
			Subjects:    []string{CounterAll},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      retention,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			Duplicates:  CounterDedupeWindow,
			AllowDirect: true,
		}},
		Consumers: map[string][]jetstream.ConsumerConfig{CounterStream: consumers},
		KeyValues: []jetstream.KeyValueConfig{
			{Bucket: CounterAPIKeysBucket, Description: "Counter API keys by SHA-256", History: 1, Storage: jetstream.FileStorage, Replicas: r},
			{Bucket: CounterOwnersBucket, Description: "Counter partition leases and worker heartbeats", History: 1, TTL: CounterLeaseTTL, Storage: jetstream.FileStorage, Replicas: r},
			{Bucket: CounterFreshnessBucket, Description: "Counter freshness per partition", History: 1, Storage: jetstream.FileStorage, Replicas: r},
		},
	}
}

// CounterType is what happened to a video.
type CounterType string

// Counter types.
const (
	CounterView  CounterType = "VIEW"
	CounterLike  CounterType = "LIKE"
	CounterShare CounterType = "SHARE"
)

// CounterTypes lists every valid CounterType.
var CounterTypes = []CounterType{CounterView, CounterLike, CounterShare}

// Valid reports whether t is a known type.
func (t CounterType) Valid() bool {
	return t == CounterView || t == CounterLike || t == CounterShare
}

// CounterFunction is how a read aggregates events: COUNT of events, SUM of
// their values, AVG = SUM / COUNT.
type CounterFunction string

// Counter functions.
const (
	CounterCount CounterFunction = "COUNT"
	CounterSum   CounterFunction = "SUM"
	CounterAvg   CounterFunction = "AVG"
)

// Valid reports whether f is a known function.
func (f CounterFunction) Valid() bool {
	return f == CounterCount || f == CounterSum || f == CounterAvg
}

// Limits of a counter event.
const (
	CounterMaxVideoID = 128
	CounterMaxKey     = 128
	// CounterMaxValue bounds |value| so that no stored rollup row can wrap
	// its Int64 sum: an hour row of one video would need 9.2 billion
	// events in that hour (2.5M/s), a minute row of a tenant 9.2 billion in
	// a minute. Sums over long ranges can still leave the int64 range;
	// reads detect that and never show a wrapped number.
	CounterMaxValue     = 1_000_000_000
	CounterMaxFutureGap = 5 * time.Minute // clock skew tolerated for client timestamps
)

// CounterEvent is one event as a client sends it. Type defaults to VIEW,
// Value to 1 (so SUM of plain events equals COUNT), Timestamp to the time
// the edge received it.
type CounterEvent struct {
	VideoID        string      `json:"video_id"`
	Type           CounterType `json:"type,omitempty"`
	Value          *int64      `json:"value,omitempty"`
	Timestamp      *time.Time  `json:"timestamp,omitempty"`
	IdempotencyKey string      `json:"idempotency_key,omitempty"`
}

// Normalize fills the defaults (type VIEW, value 1, timestamp now).
func (e *CounterEvent) Normalize(now time.Time) {
	if e.Type == "" {
		e.Type = CounterView
	}
	e.Type = CounterType(strings.ToUpper(string(e.Type)))
	if e.Value == nil {
		one := int64(1)
		e.Value = &one
	}
	if e.Timestamp == nil {
		ts := now
		e.Timestamp = &ts
	}
}

// Validate reports every problem of a normalized event, naming the field.
// Timestamps must lie within [now-retention, now+CounterMaxFutureGap].
func (e CounterEvent) Validate(now time.Time, retention time.Duration) error {
	var errs []error
	if err := validID("video_id", e.VideoID, CounterMaxVideoID); err != nil {
		errs = append(errs, err)
	}
	if !e.Type.Valid() {
		errs = append(errs, fmt.Errorf("type: %q is not one of VIEW, LIKE, SHARE", e.Type))
	}
	if e.Value != nil && (*e.Value > CounterMaxValue || *e.Value < -CounterMaxValue) {
		errs = append(errs, fmt.Errorf("value: %d is out of range ±%d", *e.Value, int64(CounterMaxValue)))
	}
	if e.Timestamp != nil {
		if e.Timestamp.After(now.Add(CounterMaxFutureGap)) {
			errs = append(errs, fmt.Errorf("timestamp: %s is more than %v in the future", e.Timestamp.UTC().Format(time.RFC3339), CounterMaxFutureGap))
		}
		if retention <= 0 {
			retention = CounterDefaultRetention
		}
		if e.Timestamp.Before(now.Add(-retention)) {
			errs = append(errs, fmt.Errorf("timestamp: %s is older than the raw-event retention (%v)", e.Timestamp.UTC().Format(time.RFC3339), retention))
		}
	}
	if e.IdempotencyKey != "" {
		if err := validID("idempotency_key", e.IdempotencyKey, CounterMaxKey); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func validID(field, s string, maxLen int) error {
	switch {
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("%s: required", field)
	case len(s) > maxLen:
		return fmt.Errorf("%s: longer than %d bytes", field, maxLen)
	case strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) >= 0:
		return fmt.Errorf("%s: must be printable characters without spaces", field)
	}
	return nil
}

// CounterRow is a collapsed group of events with the same (tenant, video,
// type, minute): Count events whose values add up to Sum.
type CounterRow struct {
	Tenant  string      `json:"t"`
	VideoID string      `json:"v"`
	Type    CounterType `json:"y"`
	Minute  int64       `json:"m"` // unix seconds, a multiple of 60
	Count   uint64      `json:"c"`
	Sum     int64       `json:"s"`
}

// Validate reports what makes r unusable.
func (r CounterRow) Validate() error {
	var errs []error
	if err := validID("tenant", r.Tenant, CounterMaxVideoID); err != nil {
		errs = append(errs, err)
	}
	if err := validID("video_id", r.VideoID, CounterMaxVideoID); err != nil {
		errs = append(errs, err)
	}
	if !r.Type.Valid() {
		errs = append(errs, fmt.Errorf("type: %q is not one of VIEW, LIKE, SHARE", r.Type))
	}
	if r.Minute <= 0 || r.Minute%60 != 0 {
		errs = append(errs, fmt.Errorf("minute: %d is not a whole minute", r.Minute))
	}
	if r.Count == 0 {
		errs = append(errs, errors.New("count: must be positive"))
	}
	return errors.Join(errs...)
}

// CounterBatch is the payload of a message on a partition subject. Every row
// belongs to the subject's partition.
type CounterBatch struct {
	Rows []CounterRow `json:"rows"`
}

// Validate checks every row and that it belongs to partition p.
func (b CounterBatch) Validate(p int) error {
	if len(b.Rows) == 0 {
		return errors.New("rows: empty batch")
	}
	for i, r := range b.Rows {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
		if CounterPartition(r.VideoID) != p {
			return fmt.Errorf("row %d: video %q belongs to partition %d, not %d", i, r.VideoID, CounterPartition(r.VideoID), p)
		}
	}
	return nil
}

// CounterValidVideoID reports why id cannot be a video id, or nil.
func CounterValidVideoID(id string) error { return validID("video_id", id, CounterMaxVideoID) }
