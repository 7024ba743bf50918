package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// GDPR requests (seed 001, "GDPR Points"): a signed-in person asks for a copy
// of their data or for its deletion, confirms by magic link, and the request
// is queued on GDPRStream for the gdpr worker role. One consumer with few
// requests in flight: 500 participants asking at once are worked through in
// turn instead of overloading anything.
const (
	// GDPRStream is the work queue of confirmed requests.
	GDPRStream = "GDPR"
	// GDPRExport carries requests for a copy of a person's data.
	GDPRExport = "gdpr.export"
	// GDPRDelete carries requests to delete a person's data.
	GDPRDelete = "gdpr.delete"
	// GDPRConsumer is the durable consumer of the gdpr role.
	GDPRConsumer = "gdpr"

	// GDPRRequestsBucket holds requests under req.<request-id> from the
	// moment they are made until a week after: awaiting the magic-link
	// confirmation, then queued, then done. Keys expire on their own.
	GDPRRequestsBucket = "GDPR_REQUESTS"

	gdprAll = "gdpr.*"

	// GDPRExportsStream holds one-shot message schedules (@at) that delete
	// a GDPR export from the blob store when its link stops working:
	//   gdprexports.at.<request-id>      the schedule (Nats-Schedule: @at …)
	//   gdprexports.expire.<request-id>  what it fires, consumed by the
	//                                     gdpr-exports role
	GDPRExportsStream = "GDPR_EXPORTS"
	// GDPRExportsConsumer is the durable consumer of the gdpr-exports role.
	GDPRExportsConsumer = "gdpr-exports"

	gdprExportAt     = "gdprexports.at."
	gdprExportExpire = "gdprexports.expire."
)

// GDPRExportSchedule is the subject of the schedule deleting request rid's
// export.
func GDPRExportSchedule(rid string) string { return gdprExportAt + rid }

// GDPRExportExpire is the subject that schedule fires on.
func GDPRExportExpire(rid string) string { return gdprExportExpire + rid }

// GDPRExportExpiry is the payload of an export's schedule and of what it
// fires: the blob key of the export to delete.
type GDPRExportExpiry struct {
	RequestID string    `json:"request_id"`
	Key       string    `json:"key"`
	At        time.Time `json:"at"`
}

// Kinds of GDPR requests.
const (
	GDPRKindExport = "export"
	GDPRKindDelete = "delete"
)

// GDPRSubject is the subject requests of kind are queued on.
func GDPRSubject(kind string) string { return "gdpr." + kind }

// GDPRRequest is a confirmed request, the payload of messages on GDPRStream.
// It names the person by account id and address: after the account is
// deleted, the address is what finds their registrations.
type GDPRRequest struct {
	ID     string    `json:"id"`
	Kind   string    `json:"kind"` // GDPRKindExport or GDPRKindDelete
	UserID string    `json:"user_id"`
	Email  string    `json:"email"`
	At     time.Time `json:"at"` // when the person confirmed it
}

func gdprAssets(o Options) assetSet {
	r := o.replicas()
	return assetSet{
		Streams: []jetstream.StreamConfig{{
			Name:        GDPRStream,
			Description: "Confirmed GDPR requests (gdpr.export, gdpr.delete), consumed by the gdpr role",
			Subjects:    []string{gdprAll},
			Retention:   jetstream.WorkQueuePolicy,
			// The law gives 30 days; a request still here after that has
			// failed for good and is in the DLQ long before.
			MaxAge:     30 * 24 * time.Hour,
			Storage:    jetstream.FileStorage,
			Replicas:   r,
			Duplicates: time.Hour,
		}, {
			Name:        GDPRExportsStream,
			Description: "One-shot schedules deleting GDPR exports when their link expires (gdprexports.at.*) and their firings (gdprexports.expire.*)",
			Subjects:    []string{gdprExportAt + "*", gdprExportExpire + "*"},
			Retention:   jetstream.LimitsPolicy,
			// Longer than the week a schedule waits before it fires.
			MaxAge:            8 * 24 * time.Hour,
			Storage:           jetstream.FileStorage,
			Replicas:          r,
			Duplicates:        time.Hour,
			AllowMsgSchedules: true,
			// One schedule and one firing per export.
			MaxMsgsPerSubject: 1,
		}},
		Consumers: map[string][]jetstream.ConsumerConfig{GDPRExportsStream: {{
			Durable:       GDPRExportsConsumer,
			Description:   "gdpr-exports role: delete a GDPR export whose link expired",
			FilterSubject: gdprExportExpire + "*",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    8,
			Replicas:      r,
		}}, GDPRStream: {{
			Durable:       GDPRConsumer,
			Description:   "gdpr role: export or delete a person's data",
			FilterSubject: gdprAll,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       2 * time.Minute,
			MaxDeliver:    8,
			MaxAckPending: 4,
			Replicas:      r,
		}}},
		KeyValues: []jetstream.KeyValueConfig{{
			Bucket:      GDPRRequestsBucket,
			Description: "GDPR requests by id: awaiting confirmation, queued, done; each expires after a week",
			History:     1,
			TTL:         7 * 24 * time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		}},
	}
}
