package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Events (seed 001): organisers, events and their ticket types, and
// registrations live in KV; every state change is also published as a
// domain event on EventsStream for analytics, fees and exports.
const (
	// EventsCatalogBucket holds, keyed for its queries:
	//   event.<event-id>                 the event with its ticket types (JSON)
	//   org.<organiser-id>.<event-id>    index: an organiser's events
	//   organiser.<user-id>              the organiser's profile (Stripe account)
	//   seats.<event-id>                 seats taken, per event and ticket type;
	//                                    changed only by compare-and-set
	// Edges watch event.* to keep the public browse view in memory.
	EventsCatalogBucket = "EVENTS_CATALOG"
	// EventsRegistrationsBucket holds:
	//   reg.<event-id>.<registration-id>                  the registration (JSON)
	//   person.<email-hash>.<event-id>.<registration-id>  index: a participant's registrations
	EventsRegistrationsBucket = "EVENTS_REGISTRATIONS"

	// EventsStream carries domain events: events.<kind>.<event-id>.
	EventsStream = "EVENTS"
	// EventsAll matches every domain event.
	EventsAll = eventsSubjectPrefix + ">"

	eventsSubjectPrefix = "events."

	// EventsHoldsStream holds one-shot message schedules (@at) that release
	// a paid ticket's seat when its checkout never completes, and that
	// expire a registration its participant never confirmed (the hold's
	// schedule replaces that one on confirmation: one per registration):
	//   eventholds.at.<registration-id>       the schedule (Nats-Schedule: @at …)
	//   eventholds.release.<registration-id>  what it fires, consumed by the
	//                                          event-holds role
	EventsHoldsStream = "EVENT_HOLDS"
	// EventsHoldsConsumer is the durable consumer of the event-holds role.
	EventsHoldsConsumer = "event-holds"

	eventHoldAt      = "eventholds.at."
	eventHoldRelease = "eventholds.release."
)

// EventsHoldSchedule is the subject of the schedule of registration rid's hold.
func EventsHoldSchedule(rid string) string { return eventHoldAt + rid }

// EventsHoldRelease is the subject the schedule fires on.
func EventsHoldRelease(rid string) string { return eventHoldRelease + rid }

// EventsHoldExpiry is the payload of a hold's schedule and of what it fires.
type EventsHoldExpiry struct {
	EventID        string    `json:"event_id"`
	RegistrationID string    `json:"registration_id"`
	Until          time.Time `json:"until"`
	// Unconfirmed marks the expiry of a registration never confirmed by
	// its participant, rather than of a paid ticket's seat hold.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
}

// Kinds of domain events on EventsStream.
const (
	EventsKindCreated       = "created"
	EventsKindUpdated       = "updated"
	EventsKindPublished     = "published"
	EventsKindRegistered    = "registered" // a registration was submitted (email not yet confirmed)
	EventsKindConfirmed     = "confirmed"  // the participant confirmed by magic link; free ticket granted
	EventsKindSeatHeld      = "seatheld"   // paid ticket: seat held, checkout started
	EventsKindPaid          = "paid"
	EventsKindCancelled     = "cancelled"
	EventsKindStripeLinked  = "stripelinked"  // organiser connected a Stripe account
	EventsKindHoldReleased  = "holdreleased"  // an unpaid seat hold expired and the seat is free again
	EventsKindUnconfirmed   = "unconfirmed"   // a registration nobody confirmed expired and was deleted
	EventsKindLatePayment   = "latepayment"   // a payment arrived after its hold was released and no seat was left: refund due
	EventsKindPseudonymised = "pseudonymised" // a participant's name and email were replaced (GDPR deletion)
)

// EventsSubject is the subject of a domain event of kind about event id.
func EventsSubject(kind, eventID string) string {
	return eventsSubjectPrefix + kind + "." + eventID
}

// EventsDomainEvent is the payload of every message on EventsStream. Fields
// that do not apply to a kind are empty.
type EventsDomainEvent struct {
	Kind           string    `json:"kind"`
	EventID        string    `json:"event_id"`
	OrganiserID    string    `json:"organiser_id,omitempty"`
	RegistrationID string    `json:"registration_id,omitempty"`
	TicketTypeID   string    `json:"ticket_type_id,omitempty"`
	AmountMinor    int64     `json:"amount_minor,omitempty"`
	Currency       string    `json:"currency,omitempty"`
	At             time.Time `json:"at"`
}

func eventsAssets(o Options) assetSet {
	r := o.replicas()
	return assetSet{
		Streams: []jetstream.StreamConfig{{
			Name:        EventsStream,
			Description: "Events product domain events (events.<kind>.<event-id>) for analytics, fees and exports",
			Subjects:    []string{EventsAll},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      400 * 24 * time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			Duplicates:  time.Hour,
			AllowDirect: true,
		}, {
			Name:              EventsHoldsStream,
			Description:       "One-shot schedules releasing unpaid seat holds (eventholds.at.*) and their firings (eventholds.release.*)",
			Subjects:          []string{eventHoldAt + "*", eventHoldRelease + "*"},
			Retention:         jetstream.LimitsPolicy,
			MaxAge:            7 * 24 * time.Hour,
			Storage:           jetstream.FileStorage,
			Replicas:          r,
			Duplicates:        time.Hour,
			AllowMsgSchedules: true,
			// One schedule and one firing per registration.
			MaxMsgsPerSubject: 1,
		}},
		Consumers: map[string][]jetstream.ConsumerConfig{EventsHoldsStream: {{
			Durable:       EventsHoldsConsumer,
			Description:   "event-holds role: release a paid ticket's seat when its checkout was never completed",
			FilterSubject: eventHoldRelease + "*",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    8,
			Replicas:      r,
		}}},
		KeyValues: []jetstream.KeyValueConfig{
			{Bucket: EventsCatalogBucket, Description: "Events, ticket types, organisers and seat counters", History: 5, Storage: jetstream.FileStorage, Replicas: r},
			{Bucket: EventsRegistrationsBucket, Description: "Event registrations and the per-participant index", History: 5, Storage: jetstream.FileStorage, Replicas: r},
		},
	}
}
