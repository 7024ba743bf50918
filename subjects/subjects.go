// Package subjects is the contract of jetfleet's backbone: every subject,
// stream, consumer, KV bucket, object store and message schedule is named here
// and nowhere else, together with the Go types of the messages that travel on
// them. Provision creates or updates all of it.
//
// Operators see these names in the NATS CLI (`nats stream ls`,
// `nats consumer report MAIL`), so they are stable: renaming one is a
// migration, not a refactor.
//
// The package imports nothing of jetfleet's.
package subjects

import "strings"

// Streams.
const (
	// DLQStream keeps every message a worker gave up on, with the reason in
	// headers, for operators to inspect and replay (`jetfleet dlq`).
	DLQStream = "DLQ"
	// SchedulesStream holds the server-side message schedules (cron
	// definitions) and the ticks they produce.
	SchedulesStream = "SCHEDULES"
	// MailStream is the work queue of outgoing mail.
	MailStream = "MAIL"
)

// Subjects.
const (
	dlqPrefix        = "dlq."
	scheduleDefToken = "sched.def."
	scheduleFire     = "sched.fire."

	// MailSend carries one Mail to deliver.
	MailSend = "mail.send"
)

// DLQ returns the subject under which a message given up on by consumer of
// stream is dead-lettered: dlq.<stream>.<consumer>.
func DLQ(stream, consumer string) string {
	return dlqPrefix + stream + "." + consumer
}

// DLQFilters returns the subject filters for dead letters of one stream, of
// every partition stream of the Enricher's input when stream is
// EnricherInputStreams, or of every stream when stream is empty.
func DLQFilters(stream string) []string {
	if stream != EnricherInputStreams {
		return []string{DLQFilter(stream)}
	}
	filters := make([]string, EnricherPartitions)
	for p := range filters {
		filters[p] = DLQFilter(EnricherPartitionStream(p))
	}
	return filters
}

// DLQOriginStream is the origin stream of a DLQ subject, "" when subject is
// not one.
func DLQOriginStream(subject string) string {
	rest, ok := strings.CutPrefix(subject, dlqPrefix)
	if !ok {
		return ""
	}
	stream, _, _ := strings.Cut(rest, ".")
	return stream
}

// DLQAll matches every dead-lettered message.
const DLQAll = dlqPrefix + ">"

// DLQFilter returns the subject filter for dead letters of one stream, or of
// every stream when stream is empty.
func DLQFilter(stream string) string {
	if stream == "" {
		return DLQAll
	}
	return dlqPrefix + stream + ".>"
}

// ScheduleDef is the subject holding the definition of schedule name.
func ScheduleDef(name string) string { return scheduleDefToken + name }

// ScheduleTick is the subject on which schedule name fires.
func ScheduleTick(name string) string { return scheduleFire + name }

// ScheduleName returns the schedule name of a tick subject, or "" when the
// subject is not a tick.
func ScheduleName(tickSubject string) string {
	name, ok := strings.CutPrefix(tickSubject, scheduleFire)
	if !ok {
		return ""
	}
	return name
}

// Headers set on dead-lettered messages. Original headers are kept beside
// them.
const (
	HeaderDLQSubject    = "Jetfleet-Dlq-Subject"    // subject the message was published to
	HeaderDLQStream     = "Jetfleet-Dlq-Stream"     // stream it was consumed from
	HeaderDLQConsumer   = "Jetfleet-Dlq-Consumer"   // durable consumer that gave up
	HeaderDLQSequence   = "Jetfleet-Dlq-Sequence"   // stream sequence of the original
	HeaderDLQDeliveries = "Jetfleet-Dlq-Deliveries" // how many times it was delivered
	HeaderDLQError      = "Jetfleet-Dlq-Error"      // why it was given up on
	HeaderDLQTime       = "Jetfleet-Dlq-Time"       // when, RFC 3339
	HeaderDLQReplayed   = "Jetfleet-Dlq-Replayed"   // set on a message replayed to its origin
)

// KV buckets.
const (
	// SessionsBucket holds web sessions, each key with its own TTL.
	SessionsBucket = "SESSIONS"
	// OutboxBucket keeps the last mails in development installs, where no
	// SMTP server is configured, so a newcomer can open a magic link.
	OutboxBucket = "OUTBOX"
)

// Object stores.
const (
	// BlobStore is the embedded default for blobs (thumbnails, renditions)
	// when no S3 endpoint is configured.
	BlobStore = "BLOBS"
)

// Consumers.
const (
	// MailConsumer is the durable consumer of the mail role.
	MailConsumer = "mail"
)

// KVPutSubject is the subject a raw publish to store key in KV bucket goes
// to. Bulk loaders publish to it asynchronously instead of one synchronous
// Put per key.
func KVPutSubject(bucket, key string) string { return "$KV." + bucket + "." + key }
