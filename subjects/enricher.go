package subjects

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The Enricher's contract (seed 004).
//
// Producers publish one JSON event per message to
//
//	input.user.<uuid>                 a user event (create/update)
//	input.subscription.<user_uuid>    a subscription event (create/update)
//	input.lesson.<user_uuid>          a completed lesson
//
// (EnricherInput(kind, userUUID) builds these). The NATS server's account
// subject mapping (EnricherMappingSource → EnricherMappingDestination, see
// EnricherServerMapping) hashes the user uuid token into one of
// EnricherPartitions partitions and rewrites the subject to
// input.part.<p>.<kind>, so every event of one user lands in one partition,
// in publish order, without producers knowing the hash. Each partition is a
// stream of its own (INPUT_<p>, EnricherPartitionStream) with one consumer:
// one stream per partition costs the server about half the CPU per message
// of one stream with a filtered consumer per partition, and in a cluster the
// partitions' leaders spread over the servers. The mapping lives in the
// server's configuration (the embedded server of `jetfleet dev` and of the
// tests sets it, deploy/nats/nats.conf too); Provision checks it with a
// probe and says what to add when it is missing.
//
// The streams take the stored form input.part.<p>.<kind> as is: a dead
// letter records that subject, and `jetfleet dlq replay` publishes it back
// there, into the same partition (the Enricher still checks that the body's
// user belongs to it). A publish to any other input subject (an unknown
// kind) has no responders: producers learn at once instead of losing
// events.
//
// Every event comes out on OUTPUT as output.<kind>: users and subscriptions
// as they came in, lessons enriched.
const (
	// EnricherInputStreamPrefix starts the name of every partition stream
	// (EnricherPartitionStream).
	EnricherInputStreamPrefix = "INPUT_"
	// EnricherInputStreams stands for every partition stream where one
	// origin stream is asked for (`jetfleet dlq ls --stream INPUT`).
	EnricherInputStreams = "INPUT"
	// EnricherOutputStream holds every event the Enricher emitted.
	EnricherOutputStream = "OUTPUT"

	// EnricherPartitions is how many partitions the input has (one stream
	// each; the server mapping's partition count). Each partition is
	// processed in order by one worker at a time, so it bounds the
	// Enricher's parallelism. Changing it means changing the server
	// mapping too, and re-partitions new events only: drain the input first.
	//
	// More partitions than cores on purpose: a partition's loop waits on
	// the server (fetch, state prefetch, publish acks) most of the time, so
	// 8 partitions left a 2-core worker half idle (bench: ~10k lessons/s at
	// 8, ~18k at 32 with nothing else changed).
	EnricherPartitions = 32
	// DefaultEnricherStateShards is how many KV buckets each kind of state
	// is spread over (by user uuid hash) unless Options say otherwise, so a
	// cluster can place them on different servers. 500M rows want 8
	// (README); MaxEnricherStateShards bounds the option.
	DefaultEnricherStateShards = 4
	MaxEnricherStateShards     = 256
	// enricherShardsMeta is the partition streams' metadata key recording
	// the shard count the state was written with.
	enricherShardsMeta = "jetfleet.enricher.state_shards"

	// EnricherAnalyticsConsumer copies emitted lessons to ClickHouse.
	EnricherAnalyticsConsumer = "enricher-analytics"

	// EnricherKeysBucket holds the API keys of the HTTP ingest, by SHA-256
	// of the key (the key itself is never stored).
	EnricherKeysBucket = "ENRICHER_APIKEYS"

	// EnricherHeldBucket keeps, by input position (EnricherInputPos), what a lesson held back
	// with ENRICHER_HOLD was enriched with at its first attempt, so a worker
	// taking the partition over keeps it frozen. Entries expire after
	// EnricherHeldTTL.
	EnricherHeldBucket = "ENRICHER_HELD"
	// EnricherHeldTTL outlives any hold (EnricherMaxHold) and the waits of
	// the events behind it.
	EnricherHeldTTL = 30 * time.Minute

	// EnricherGroup is the priority group of the partition consumers: the
	// server pins each partition to one client of the group at a time.
	EnricherGroup = "enricher"

	inputPrefix     = "input."
	inputPartPrefix = "input.part."
	outputPrefix    = "output."
	usersBucketFmt  = "ENRICHER_USERS_%d"
	subsBucketFmt   = "ENRICHER_SUBS_%d"
	consumerFmt     = "enricher-p%d"
	// enricherProbeKind is the kind of Provision's mapping probe: no
	// stream takes it.
	enricherProbeKind = "probe"
)

// The account subject mapping that partitions the input (EnricherServerMapping).
const (
	EnricherMappingSource = inputPrefix + "*.*"
	// The hash is nats-server's partition(): FNV-1a 32 of the uuid token
	// modulo the count, which EnricherPartitionOf computes too.
	EnricherMappingDestination = inputPartPrefix + "{{partition(32,2)}}.{{wildcard(1)}}"
)

// EnricherServerMapping is the mapping as it goes in a nats-server
// configuration file, inside the account (accounts { X { mappings {…} } })
// or at the top level for a server without accounts.
func EnricherServerMapping() string {
	return fmt.Sprintf("mappings: { %q: %q }", EnricherMappingSource, EnricherMappingDestination)
}

// EnricherEvent kinds, the second token of input and output subjects.
const (
	EnricherKindUser         = "user"
	EnricherKindSubscription = "subscription"
	EnricherKindLesson       = "lesson"
)

// EnricherKinds lists the event kinds in a stable order.
var EnricherKinds = [...]string{EnricherKindUser, EnricherKindSubscription, EnricherKindLesson}

// EnricherInput is the subject a producer publishes an event of kind for the
// user userUUID to.
func EnricherInput(kind, userUUID string) string {
	return inputPrefix + kind + "." + userUUID
}

// EnricherPartitionFilter matches every stored subject of partition p.
func EnricherPartitionFilter(p int) string {
	return inputPartPrefix + strconv.Itoa(p) + ".*"
}

// EnricherPartitionSubject is the stored subject of an event of kind in
// partition p: what the server mapping makes of EnricherInput.
func EnricherPartitionSubject(p int, kind string) string {
	return inputPartPrefix + strconv.Itoa(p) + "." + kind
}

// EnricherPartitionStream is the stream of partition p.
func EnricherPartitionStream(p int) string { return EnricherInputStreamPrefix + strconv.Itoa(p) }

// EnricherPartitionStreams lists the partition streams in partition order.
func EnricherPartitionStreams() []string {
	names := make([]string, EnricherPartitions)
	for p := range names {
		names[p] = EnricherPartitionStream(p)
	}
	return names
}

// EnricherInputPos names an input event by its partition and its sequence in
// the partition's stream: unique across partitions (sequences are not).
func EnricherInputPos(p int, seq uint64) string {
	return strconv.Itoa(p) + "." + strconv.FormatUint(seq, 10)
}

// EnricherPartitionConsumer is the durable consumer of partition p.
func EnricherPartitionConsumer(p int) string { return fmt.Sprintf(consumerFmt, p) }

// EnricherStoredKind returns the kind of a stored input subject
// (input.part.<p>.<kind>), or "" when the subject is not one.
func EnricherStoredKind(subject string) string {
	rest, ok := strings.CutPrefix(subject, inputPartPrefix)
	if !ok {
		return ""
	}
	_, kind, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return kind
}

// EnricherOutput is the subject an emitted event of kind is published on.
func EnricherOutput(kind string) string { return outputPrefix + kind }

// EnricherOutputAll matches every emitted event.
const EnricherOutputAll = outputPrefix + "*"

// EnricherPartitionOf is the partition the server mapping assigns to
// userUUID: FNV-1a 32 of the token modulo EnricherPartitions, the hash of
// nats-server's partition() mapping function.
func EnricherPartitionOf(userUUID string) int {
	return int(fnv32a(userUUID) % EnricherPartitions)
}

// EnricherShardOf is the state shard of userUUID among shards. Users and
// their subscriptions share a shard, so one user's state lives in one place.
func EnricherShardOf(userUUID string, shards int) int {
	// A different seed from the partition hash, so partitions and shards
	// are independent: partition p's users spread over every shard.
	return int((fnv32a(userUUID) >> 8) % uint32(shards))
}

// EnricherShards is the number of state shards the deployment was
// provisioned with, as recorded on the partition streams.
func EnricherShards(ctx context.Context, js jetstream.JetStream) (int, error) {
	n, provisioned, err := recordedShards(ctx, js)
	if err == nil && !provisioned {
		return 0, fmt.Errorf("stream %s does not exist: provision first (jetfleet migrate)", EnricherPartitionStream(0))
	}
	return n, err
}

// recordedShards reads the shard count recorded on the first partition
// stream (every one records the same); a stream provisioned before it was
// recorded used the default. provisioned is false when the stream does not
// exist.
func recordedShards(ctx context.Context, js jetstream.JetStream) (n int, provisioned bool, err error) {
	name := EnricherPartitionStream(0)
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("enricher state shards: stream %s: %w", name, err)
	}
	v, ok := s.CachedInfo().Config.Metadata[enricherShardsMeta]
	if !ok {
		return DefaultEnricherStateShards, true, nil
	}
	n, err = strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxEnricherStateShards {
		return 0, true, fmt.Errorf("enricher state shards: stream %s metadata %s=%q is not a count from 1 to %d", name, enricherShardsMeta, v, MaxEnricherStateShards)
	}
	return n, true, nil
}

// checkEnricherShards refuses to change the shard count of a deployment
// whose state buckets hold keys: every key would be looked up in another
// bucket than the one holding it.
func checkEnricherShards(ctx context.Context, js jetstream.JetStream, o Options) error {
	want := o.enricherShards()
	if want > MaxEnricherStateShards {
		return fmt.Errorf("enricher state shards: %d is over the maximum of %d", want, MaxEnricherStateShards)
	}
	have, provisioned, err := recordedShards(ctx, js)
	if err != nil || !provisioned || have == want {
		return err // a new deployment may choose any count
	}
	for sh := range have {
		for _, bucket := range []string{EnricherUsersBucket(sh), EnricherSubsBucket(sh)} {
			kv, err := js.KeyValue(ctx, bucket)
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("enricher state shards: %s: %w", bucket, err)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				return fmt.Errorf("enricher state shards: %s: %w", bucket, err)
			}
			if st.Values() > 0 {
				return fmt.Errorf("enricher state is sharded %d ways and %s holds %d keys: changing to %d would lose them; "+
					"stop the enricher, delete the ENRICHER_USERS_* and ENRICHER_SUBS_* buckets, provision again and re-load the snapshot (jetfleet enricher load)",
					have, bucket, st.Values(), want)
			}
		}
	}
	return nil
}

// EnricherUsersBucket is the KV bucket of shard s of the user state: one key
// per user uuid.
func EnricherUsersBucket(s int) string { return fmt.Sprintf(usersBucketFmt, s) }

// EnricherSubsBucket is the KV bucket of shard s of the subscription state:
// one key per (user uuid, language), EnricherSubKey.
func EnricherSubsBucket(s int) string { return fmt.Sprintf(subsBucketFmt, s) }

// EnricherSubKey is the KV key of a user's subscription in language.
func EnricherSubKey(userUUID, language string) string { return userUUID + "." + language }

// EnricherSubKeyParts splits a key made by EnricherSubKey (the language is
// the last token).
func EnricherSubKeyParts(key string) (userUUID, language string) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return key, ""
	}
	return key[:i], key[i+1:]
}

func fnv32a(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// Consumer settings of the partition consumers, shared with the worker.
const (
	// EnricherAckWait is how long a fetched, unacknowledged event waits
	// before the server redelivers it (a worker that died). A worker
	// retrying in place extends it (InProgress).
	EnricherAckWait = 10 * time.Second
	// EnricherPinnedTTL is how long a partition stays pinned to a worker
	// that stopped pulling before another worker takes it over. It is longer
	// than EnricherAckWait so that, usually, what a dead worker held is
	// redelivered before the next owner is pinned. Order does not depend
	// on it: the new owner holds its first batch until everything
	// outstanding is back in hand (consume.OrderedConsumer's takeover).
	// A graceful stop unpins at once.
	EnricherPinnedTTL = 15 * time.Second
	// EnricherOutputDuplicates is the OUTPUT deduplication window: an input
	// redelivered within it (a crash between publish and ack) does not
	// produce a second output event. It must exceed EnricherAckWait plus
	// the longest late-dimension hold.
	EnricherOutputDuplicates = 5 * time.Minute
	// EnricherMaxHold bounds the opt-in hold of lessons with a late
	// dimension: OUTPUT's duplicate window less the ack wait.
	EnricherMaxHold = EnricherOutputDuplicates - EnricherAckWait
)

// enricherAssets declares the Enricher's streams, consumers and buckets
// (seed 004).
func enricherAssets(o Options) assetSet {
	r := o.replicas()
	shards := o.enricherShards()
	set := assetSet{
		Streams: []jetstream.StreamConfig{
			{
				Name:        EnricherOutputStream,
				Description: "Enricher output: every input event, lessons enriched (output.<kind>)",
				Subjects:    []string{EnricherOutputAll},
				Retention:   jetstream.LimitsPolicy,
				MaxAge:      7 * 24 * time.Hour,
				Storage:     jetstream.FileStorage,
				Replicas:    r,
				Duplicates:  EnricherOutputDuplicates,
				AllowDirect: true,
			},
		},
		Consumers: map[string][]jetstream.ConsumerConfig{},
	}
	for p := range EnricherPartitions {
		name := EnricherPartitionStream(p)
		var subs []string
		for _, kind := range EnricherKinds {
			subs = append(subs, EnricherPartitionSubject(p, kind))
		}
		set.Streams = append(set.Streams, jetstream.StreamConfig{
			Name:        name,
			Description: fmt.Sprintf("Enricher input, partition %d of %d: user, subscription and lesson events of the users the server mapping hashes here", p, EnricherPartitions),
			// Only the known kinds, so a publish of any other kind has no
			// responders (and Provision's probe is never stored).
			Subjects:   subs,
			Retention:  jetstream.LimitsPolicy,
			MaxAge:     7 * 24 * time.Hour,
			Storage:    jetstream.FileStorage,
			Replicas:   r,
			Duplicates: 2 * time.Minute,
			Metadata:   map[string]string{enricherShardsMeta: strconv.Itoa(shards)},
		})
		set.Consumers[name] = []jetstream.ConsumerConfig{{
			Durable:       EnricherPartitionConsumer(p),
			Description:   fmt.Sprintf("enricher: partition %d, in order, pinned to one worker", p),
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       EnricherAckWait,
			// Unlimited: the worker decides (dead-letters invalid events,
			// emits parked lessons after the hold); a KV outage must not
			// exhaust deliveries.
			MaxDeliver:     -1,
			MaxAckPending:  20000,
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PriorityGroups: []string{EnricherGroup},
			PinnedTTL:      EnricherPinnedTTL,
			Replicas:       r,
		}}
	}
	set.Consumers[EnricherOutputStream] = []jetstream.ConsumerConfig{{
		Durable:       EnricherAnalyticsConsumer,
		Description:   "enricher-analytics: emitted lessons into ClickHouse",
		FilterSubject: EnricherOutput(EnricherKindLesson),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxDeliver:    -1, // ClickHouse down means wait, not dead-letter
		MaxAckPending: 4000,
		Replicas:      r,
	}}
	set.KeyValues = append(set.KeyValues, jetstream.KeyValueConfig{
		Bucket:      EnricherKeysBucket,
		Description: "enricher ingest API keys (SHA-256 of the key → record)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	})
	set.KeyValues = append(set.KeyValues, jetstream.KeyValueConfig{
		Bucket:      EnricherHeldBucket,
		Description: "enricher: enrichment frozen for lessons held back (ENRICHER_HOLD), by input position (<partition>.<sequence>)",
		History:     1,
		TTL:         EnricherHeldTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    r,
	})
	for s := range shards {
		for _, name := range []string{EnricherUsersBucket(s), EnricherSubsBucket(s)} {
			set.KeyValues = append(set.KeyValues, jetstream.KeyValueConfig{
				Bucket:      name,
				Description: fmt.Sprintf("enricher state shard %d/%d", s, shards),
				History:     1,
				Storage:     jetstream.FileStorage,
				Replicas:    r,
			})
		}
	}
	return set
}

// EnricherOwnerHeader names, on INPUT and OUTPUT events, the account that
// owns the ingest API key an event came in with. The HTTP ingest sets it
// (callers cannot: it builds every message itself), the Enricher copies it
// to the event it emits, and the lesson sink records it
// (enricher_lessons.owner), so a user's /enricher page counts only their own
// lessons. Events published straight to NATS carry it only if their
// producer sets it: NATS credentials are an operator's.
const EnricherOwnerHeader = "Jetfleet-Owner"

// CheckEnricherMapping probes the server the connection is on for the
// account mapping that partitions the input: it publishes probe events
// (a kind no stream takes) for a few users and checks that each arrives on
// its user's partition subject. It fails with what to add to the server's
// configuration when the mapping is missing or partitions differently.
func CheckEnricherMapping(ctx context.Context, nc *nats.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sub, err := nc.SubscribeSync(inputPartPrefix + "*." + enricherProbeKind)
	if err != nil {
		return fmt.Errorf("enricher mapping probe: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("enricher mapping probe: %w", err)
	}
	users := []string{"probe-a", "probe-b", "probe-c", "probe-d", "probe-e", "probe-f", "probe-g", "probe-h"}
	for _, u := range users {
		if err := nc.Publish(EnricherInput(enricherProbeKind, u), []byte(u)); err != nil {
			return fmt.Errorf("enricher mapping probe: %w", err)
		}
	}
	missing := fmt.Errorf("the NATS server does not partition the Enricher's input (events published to %s must arrive as %s): "+
		"add this subject mapping to the server configuration, inside the account jetfleet uses (accounts { NAME { %s } }) "+
		"or at the top level when the server has no accounts, and reload the server; deploy/nats/nats.conf has it",
		EnricherMappingSource, EnricherMappingDestination, EnricherServerMapping())
	for range users {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return missing
		}
		u := string(m.Data)
		if want := EnricherPartitionSubject(EnricherPartitionOf(u), enricherProbeKind); m.Subject != want {
			return fmt.Errorf("the NATS server partitions the Enricher's input differently (probe user %q arrived on %s, not %s): the mapping must be %s", u, m.Subject, want, EnricherServerMapping())
		}
	}
	return nil
}

// EnricherInputStats sums the partition streams' state: the events stored
// and the sequences used so far (a count of every event ever taken in).
func EnricherInputStats(ctx context.Context, js jetstream.JetStream) (msgs, taken uint64, err error) {
	l := js.ListStreams(ctx, jetstream.WithStreamListSubject(inputPartPrefix+">"))
	for info := range l.Info() {
		if !IsEnricherPartitionStream(info.Config.Name) {
			continue
		}
		msgs += info.State.Msgs
		taken += info.State.LastSeq
	}
	if err := l.Err(); err != nil {
		return 0, 0, fmt.Errorf("enricher input streams: %w", err)
	}
	return msgs, taken, nil
}

// IsEnricherPartitionStream reports whether stream is one of the partition
// streams.
func IsEnricherPartitionStream(stream string) bool {
	n, ok := strings.CutPrefix(stream, EnricherInputStreamPrefix)
	if !ok {
		return false
	}
	p, err := strconv.Atoi(n)
	return err == nil && p >= 0 && p < EnricherPartitions && EnricherPartitionStream(p) == stream
}

// legacyEnricherInput is the single input stream of earlier versions,
// partitioned by a subject transform and 32 filtered consumers. Its subjects
// overlap the partition streams'.
const legacyEnricherInput = "INPUT"

// migrateLegacyEnricherInput replaces the single input stream of earlier
// versions with the partition streams once it is drained, and refuses while
// it still holds events not handled.
//
// The stored state records, per user, the input sequence of the last event
// applied, and an event with a lower sequence never overwrites it. The
// partition streams therefore start numbering after the last sequence the
// old stream used (FirstSeq), or every event after the upgrade would look
// older than the state and be passed through without being applied. The
// steps are safe to repeat after a crash: the old stream first gives up its
// subjects (keeping its sequences), the partition streams are created, and
// only then is the old stream deleted.
func migrateLegacyEnricherInput(ctx context.Context, js jetstream.JetStream, o Options) error {
	old, err := js.Stream(ctx, legacyEnricherInput)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("enricher input: stream %s: %w", legacyEnricherInput, err)
	}
	refuse := func(why string) error {
		return fmt.Errorf("stream %s is the Enricher's input of an earlier version (one stream for every partition), now one stream per partition (%s0…%s%d), and %s: "+
			"stop the producers, let the running enricher workers drain it (nats consumer report %s: no unprocessed or pending events) and migrate again; "+
			"migrate then moves to the partition streams by itself (add the subject mapping %s to the server first)",
			legacyEnricherInput, EnricherInputStreamPrefix, EnricherInputStreamPrefix, EnricherPartitions-1, why,
			legacyEnricherInput, EnricherServerMapping())
	}
	consumers := old.ListConsumers(ctx)
	for c := range consumers.Info() {
		if c.NumPending > 0 || c.NumAckPending > 0 {
			return refuse(fmt.Sprintf("its consumer %s has %d events not handled yet", c.Name, c.NumPending+uint64(c.NumAckPending)))
		}
	}
	if err := consumers.Err(); err != nil {
		return fmt.Errorf("enricher input: consumers of %s: %w", legacyEnricherInput, err)
	}
	info, err := old.Info(ctx)
	if err != nil {
		return fmt.Errorf("enricher input: stream %s: %w", legacyEnricherInput, err)
	}
	// Free the partition subjects; the stream stays, with its sequences,
	// until the partition streams exist.
	cfg := info.Config
	cfg.Subjects = []string{"jetfleet.legacy.enricher.input"}
	cfg.SubjectTransform = nil
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("enricher input: release the subjects of %s: %w", legacyEnricherInput, err)
	}
	shards := o.enricherShards()
	if v, ok := info.Config.Metadata[enricherShardsMeta]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			shards = n // the state was written with it; checkEnricherShards compares
		}
	} else {
		shards = DefaultEnricherStateShards
	}
	for _, sc := range enricherAssets(o).Streams {
		if !IsEnricherPartitionStream(sc.Name) {
			continue
		}
		sc.FirstSeq = info.State.LastSeq + 1
		sc.Metadata = map[string]string{enricherShardsMeta: strconv.Itoa(shards)}
		if _, err := js.CreateStream(ctx, sc); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("enricher input: create %s after %s: %w", sc.Name, legacyEnricherInput, err)
		}
	}
	if err := js.DeleteStream(ctx, legacyEnricherInput); err != nil {
		return fmt.Errorf("enricher input: delete the drained %s: %w", legacyEnricherInput, err)
	}
	return nil
}
