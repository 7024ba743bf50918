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
}

func (o Options) replicas() int {
	if o.Replicas < 1 {
		return 1
	}
	return o.Replicas
}

// Streams returns the configuration of every stream jetfleet uses.
func Streams(o Options) []jetstream.StreamConfig {
	r := o.replicas()
	return []jetstream.StreamConfig{
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
	}
}

// Consumers returns every durable consumer, keyed by stream.
func Consumers(o Options) map[string][]jetstream.ConsumerConfig {
	r := o.replicas()
	return map[string][]jetstream.ConsumerConfig{
		MailStream: {{
			Durable:       MailConsumer,
			Description:   "mail role: deliver over SMTP or into the dev outbox",
			FilterSubject: MailSend,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    8,
			MaxAckPending: 256,
			Replicas:      r,
		}},
	}
}

// KeyValues returns every KV bucket.
func KeyValues(o Options) []jetstream.KeyValueConfig {
	r := o.replicas()
	return []jetstream.KeyValueConfig{
		{
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
		},
	}
}

// ObjectStores returns every object store bucket.
func ObjectStores(o Options) []jetstream.ObjectStoreConfig {
	return []jetstream.ObjectStoreConfig{{
		Bucket:      BlobStore,
		Description: "Blobs (thumbnails, renditions) when no S3 endpoint is configured",
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas(),
		Compression: false,
	}}
}
