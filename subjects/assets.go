package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Options tune the provisioned assets for an installation.
type Options struct {
	// Replicas of every stream, bucket and consumer: 1 for a single server,
	// 3 for a cluster.
	Replicas int
	// CounterRetention is how long the VIEWS stream keeps raw counter
	// batches (for `jetfleet counter rebuild`); default 7 days.
	CounterRetention time.Duration
	// EnricherStateShards is how many KV buckets each kind of Enricher
	// state is spread over; default DefaultEnricherStateShards. Recorded on
	// every partition stream, where workers read it; see EnricherShards.
	EnricherStateShards int
}

func (o Options) enricherShards() int {
	if o.EnricherStateShards < 1 {
		return DefaultEnricherStateShards
	}
	return o.EnricherStateShards
}

func (o Options) replicas() int {
	if o.Replicas < 1 {
		return 1
	}
	return o.Replicas
}

// assetSet is what one product (or the core) declares. Each product keeps
// its declarations in its own file (counter.go, enricher.go, …) and is listed
// once in products.
type assetSet struct {
	Streams      []jetstream.StreamConfig
	Consumers    map[string][]jetstream.ConsumerConfig // keyed by stream
	KeyValues    []jetstream.KeyValueConfig
	ObjectStores []jetstream.ObjectStoreConfig
}

func products(o Options) []assetSet {
	return []assetSet{
		coreAssets(o),
		accountAssets(o),
		counterAssets(o),
		enricherAssets(o),
		trackerAssets(o),
		trackerABAssets(o),
		eventsAssets(o),
		eventsEngagementAssets(o),
		eventsTeamsAssets(o),
		eventsPostAssets(o),
		eventsChatAssets(o),
		eventsExportsAssets(o),
		gdprAssets(o),
		rateLimitAssets(o),
		mediaAssets(o),
	}
}

// Streams returns the configuration of every stream jetfleet uses.
func Streams(o Options) []jetstream.StreamConfig {
	var out []jetstream.StreamConfig
	for _, p := range products(o) {
		out = append(out, p.Streams...)
	}
	return out
}

// Consumers returns every durable consumer, keyed by stream.
func Consumers(o Options) map[string][]jetstream.ConsumerConfig {
	out := map[string][]jetstream.ConsumerConfig{}
	for _, p := range products(o) {
		for stream, cs := range p.Consumers {
			out[stream] = append(out[stream], cs...)
		}
	}
	return out
}

// KeyValues returns every KV bucket.
func KeyValues(o Options) []jetstream.KeyValueConfig {
	var out []jetstream.KeyValueConfig
	for _, p := range products(o) {
		out = append(out, p.KeyValues...)
	}
	return out
}

// ObjectStores returns every object store bucket.
func ObjectStores(o Options) []jetstream.ObjectStoreConfig {
	var out []jetstream.ObjectStoreConfig
	for _, p := range products(o) {
		out = append(out, p.ObjectStores...)
	}
	return out
}

// coreAssets are shared by every product: dead letters, schedules, mail,
// sessions, blobs.
func coreAssets(o Options) assetSet {
	r := o.replicas()
	return assetSet{Streams: []jetstream.StreamConfig{
		{
			Name:        DLQStream,
			Description: "Messages workers gave up on, with the reason in Jetfleet-Dlq-* headers",
			Subjects:    []string{DLQAll},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      30 * 24 * time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			Duplicates:  10 * time.Minute,
			AllowDirect: true,
		},
		{
			Name:        SchedulesStream,
			Description: "Server-side message schedules (sched.def.*) and the ticks they fire (sched.fire.*)",
			Subjects:    []string{scheduleDefToken + "*", scheduleFire + "*"},
			Retention:   jetstream.LimitsPolicy,
			// One message per subject: a definition is replaced by its next
			// version, and a tick nobody consumed is replaced by the next one
			// rather than piling up.
			MaxMsgsPerSubject: 1,
			Storage:           jetstream.FileStorage,
			Replicas:          r,
			AllowMsgSchedules: true,
			AllowMsgTTL:       true,
			AllowDirect:       true,
		},
		{
			Name:        MailStream,
			Description: "Outgoing mail, one message per mail, consumed by the mail role",
			Subjects:    []string{MailSend},
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      7 * 24 * time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			Duplicates:  time.Hour,
		},
	},
		Consumers: map[string][]jetstream.ConsumerConfig{MailStream: {{
			Durable:       MailConsumer,
			Description:   "mail role: deliver over SMTP or into the dev outbox",
			FilterSubject: MailSend,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    8,
			MaxAckPending: 256,
			Replicas:      r,
		}}},
		KeyValues: []jetstream.KeyValueConfig{{
			Bucket:      SessionsBucket,
			Description: "Web sessions; each key expires with its session",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			// Per-key TTLs need limit markers.
			LimitMarkerTTL: time.Minute,
		},
			{
				Bucket:      OutboxBucket,
				Description: "Mail kept for the development outbox page",
				History:     1,
				TTL:         24 * time.Hour,
				Storage:     jetstream.FileStorage,
				Replicas:    r,
			}},
		ObjectStores: []jetstream.ObjectStoreConfig{{
			Bucket:      BlobStore,
			Description: "Blobs (thumbnails, renditions) when no S3 endpoint is configured",
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		}},
	}
}
