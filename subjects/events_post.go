package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// After an event (seed 001, "Analytics and exports", "Fees", "Exports"): when
// an event goes live, a one-shot message schedule is set for its end plus
// the post-event delay (2 hours); it is moved when the end changes. When it
// fires, each post-event step runs from its own durable consumer, so a step
// that fails is retried (or dead-lettered and replayed) without the others:
//
//	eventspost.at.<event-id>           the schedule (Nats-Schedule: @at end+2h)
//	eventspost.fire.<event-id>         what it fires (EventsPostFire); consumed by
//	                                   events-post (accumulation) and by any other
//	                                   step that needs only the event id (CRM exports:
//	                                   a durable of their own on EventsPostFireAll)
//	eventspost.accumulated.<event-id>  published by events-post once the summary is
//	                                   stored (EventsPostFire); consumed by events-fee
//	                                   (fee charge and summary mail), which needs
//	                                   the figures
//
// The stream keeps one message per subject (the latest schedule, the latest
// firing), so it holds at most three messages per event. A firing can come
// more than once (an operator fires it by hand, a replay from the DLQ, a
// schedule moved after it fired): every step is idempotent per event.
const (
	// EventsPostStream holds the post-event schedules and their firings.
	EventsPostStream = "EVENTS_POST"
	// EventsPostConsumer is the durable consumer of the events-post role
	// (accumulation) on EventsPostFireAll.
	EventsPostConsumer = "events-post"
	// EventsFeeConsumer is the durable consumer of the events-fee role
	// (fee and summary mail) on EventsPostAccumulatedAll.
	EventsFeeConsumer = "events-fee"
	// EventsPostFireAll matches every firing; a step of its own subscribes
	// with a durable consumer filtered on it.
	EventsPostFireAll = eventsPostFire + "*"
	// EventsPostAccumulatedAll matches every "summary stored" message.
	EventsPostAccumulatedAll = eventsPostAccumulated + "*"

	// EventsPostBucket holds, per event:
	//   summary.<event-id>   the accumulated figures (JSON), written once by events-post
	//   fee.<event-id>       the fee ledger record: intent before the charge,
	//                        result after; changed only by compare-and-set
	EventsPostBucket = "EVENTS_POST"

	eventsPostAt          = "eventspost.at."
	eventsPostFire        = "eventspost.fire."
	eventsPostAccumulated = "eventspost.accumulated."
)

// DefaultEventsPostDelay is how long after an event's end its figures are
// accumulated: late heartbeats and messages have arrived by then (seed:
// "an EventBridge schedule for 2 hours after the event finishes").
const DefaultEventsPostDelay = 2 * time.Hour

// EventsPostSchedule is the subject of event id's post-event schedule.
func EventsPostSchedule(eventID string) string { return eventsPostAt + eventID }

// EventsPostFire is the subject the schedule fires on.
func EventsPostFire(eventID string) string { return eventsPostFire + eventID }

// EventsPostAccumulated is the subject events-post publishes on when the
// event's summary is stored.
func EventsPostAccumulated(eventID string) string { return eventsPostAccumulated + eventID }

// EventsPostFiring is the payload of a schedule, of its firing and of the
// accumulated message.
type EventsPostFiring struct {
	EventID string    `json:"event_id"`
	End     time.Time `json:"end"` // the event's end when the schedule was set
	At      time.Time `json:"at"`  // when the schedule fires
}

func eventsPostAssets(o Options) assetSet {
	r := o.replicas()
	consumer := func(name, filter, desc string) jetstream.ConsumerConfig {
		return jetstream.ConsumerConfig{
			Durable: name, Description: desc, FilterSubject: filter,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: 2 * time.Minute,
			// A failed step (Stripe, ClickHouse or mail down) is retried by
			// the runtime with its backoff; after the last, dead-lettered.
			MaxDeliver: 12, Replicas: r,
		}
	}
	return assetSet{
		Streams: []jetstream.StreamConfig{{
			Name:              EventsPostStream,
			Description:       "Post-event schedules (eventspost.at.*), their firings (eventspost.fire.*) and accumulated summaries (eventspost.accumulated.*)",
			Subjects:          []string{eventsPostAt + "*", eventsPostFire + "*", eventsPostAccumulated + "*"},
			Retention:         jetstream.LimitsPolicy,
			Storage:           jetstream.FileStorage,
			Replicas:          r,
			Duplicates:        time.Hour,
			AllowMsgSchedules: true,
			// One schedule, one firing, one accumulated message per event;
			// no MaxAge: a schedule may be set a year ahead.
			MaxMsgsPerSubject: 1,
		}},
		Consumers: map[string][]jetstream.ConsumerConfig{EventsPostStream: {
			consumer(EventsPostConsumer, EventsPostFireAll, "events-post role: accumulate an event's figures once it is over"),
			consumer(EventsFeeConsumer, EventsPostAccumulatedAll, "events-fee role: charge the platform fee once and mail the organiser the summary"),
		}},
		KeyValues: []jetstream.KeyValueConfig{
			{Bucket: EventsPostBucket, Description: "Per event: accumulated summary and fee ledger", History: 5, Storage: jetstream.FileStorage, Replicas: r},
		},
	}
}
