package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Events exports (seed 001, "Exports"): the CSV of consenting participants
// mailed as a link, and contacts upserted into the organiser's HubSpot or
// Salesforce. Each export is a job on a work queue for the events-export
// role; its progress lives in a run record, so a worker killed mid-export
// resumes after the last batch it finished.
const (
	// EventsExportsStream is the work queue of export jobs:
	//   eventsexport.run.<event-id>.<target>  one export (target: csv,
	//                                         hubspot, salesforce, or
	//                                         post: every CRM the organiser
	//                                         connected, as the post-event
	//                                         schedule asks)
	EventsExportsStream = "EVENTS_EXPORTS"
	// EventsExportsConsumer is the durable consumer of the events-export role.
	EventsExportsConsumer = "events-export"

	// EventsCRMBucket holds the organisers' CRM credentials, each sealed
	// (internal/sealed, TOKEN_KEY) and bound to its organiser:
	//   hubspot.<organiser-id>     private-app token
	//   salesforce.<organiser-id>  refresh token and instance URL
	//   oauth.<state-hash>         a Salesforce connection in progress
	//                              (PKCE verifier), per-key TTL 10 minutes
	EventsCRMBucket = "EVENTS_CRM"
	// EventsExportRunsBucket holds the last run of each export:
	//   run.<event-id>.<target>  progress, per-contact failures (JSON)
	EventsExportRunsBucket = "EVENTS_EXPORT_RUNS"

	// EventsExportsMaxDeliver is how often a job is tried before it goes
	// to the DLQ.
	EventsExportsMaxDeliver = 10

	eventsExportRun = "eventsexport.run."
)

// Export targets.
const (
	EventsExportCSV        = "csv"
	EventsExportHubSpot    = "hubspot"
	EventsExportSalesforce = "salesforce"
	// EventsExportPost exports into every CRM the organiser connected: what
	// the post-event schedule (end + 2 h) publishes.
	EventsExportPost = "post"
)

// EventsExportSubject is the subject of an export job of event eid to target.
func EventsExportSubject(eid, target string) string { return eventsExportRun + eid + "." + target }

// EventsExportJob is the payload of an export job.
type EventsExportJob struct {
	EventID string `json:"event_id"`
	Target  string `json:"target"`
	// RunID names the run; a job redelivered, or published again with
	// the same RunID, resumes that run instead of starting over. The
	// post-event firing uses EventsExportPostRunID.
	RunID string `json:"run_id"`
	// RequestedBy is the account that asked (empty: the schedule).
	RequestedBy string `json:"requested_by,omitempty"`
	// MailTo is where the CSV's link goes (target csv).
	MailTo string    `json:"mail_to,omitempty"`
	At     time.Time `json:"at"`
}

// EventsExportPostRunID is the run id of the exports the post-event
// schedule starts for event eid: one per event, so a second firing finds
// the run done (or resumes it) instead of exporting again.
func EventsExportPostRunID(eid string) string { return "post-" + eid }

// EventsExportMsgID is the Nats-Msg-Id of an export job.
func EventsExportMsgID(j EventsExportJob) string {
	return "eventsexport:" + j.EventID + ":" + j.Target + ":" + j.RunID
}

func eventsExportsAssets(o Options) assetSet {
	r := o.replicas()
	return assetSet{
		Streams: []jetstream.StreamConfig{{
			Name:        EventsExportsStream,
			Description: "Events export jobs (eventsexport.run.<event-id>.<target>) for the events-export role",
			Subjects:    []string{eventsExportRun + "*.*"},
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      14 * 24 * time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			Duplicates:  time.Hour,
		}},
		Consumers: map[string][]jetstream.ConsumerConfig{EventsExportsStream: {{
			Durable:       EventsExportsConsumer,
			Description:   "events-export role: CSV links and CRM upserts of consenting participants",
			FilterSubject: eventsExportRun + "*.*",
			AckPolicy:     jetstream.AckExplicitPolicy,
			// The role reports progress (InProgress) after every batch.
			AckWait:       2 * time.Minute,
			MaxDeliver:    EventsExportsMaxDeliver,
			MaxAckPending: 16,
			Replicas:      r,
		}}},
		KeyValues: []jetstream.KeyValueConfig{{
			Bucket: EventsCRMBucket, Description: "Organisers' CRM credentials (sealed) and Salesforce connections in progress",
			History: 1, Storage: jetstream.FileStorage, Replicas: r, LimitMarkerTTL: time.Minute,
		}, {
			Bucket: EventsExportRunsBucket, Description: "Progress and failures of each event's last export per target",
			History: 1, Storage: jetstream.FileStorage, Replicas: r,
		}},
	}
}
