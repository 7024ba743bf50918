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
)

// Kinds of domain events on EventsStream.
const (
	EventCreated      = "created"
	EventUpdated      = "updated"
	EventPublished    = "published"
	EventRegistered   = "registered" // a registration was submitted (email not yet confirmed)
	EventConfirmed    = "confirmed"  // the participant confirmed by magic link; free ticket granted
	EventSeatHeld     = "seatheld"   // paid ticket: seat held, checkout started
	EventPaid         = "paid"
	EventCancelled    = "cancelled"
	EventStripeLinked = "stripelinked" // organiser connected a Stripe account
)

// EventSubject is the subject of a domain event of kind about event id.
func EventSubject(kind, eventID string) string {
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
		}},
		KeyValues: []jetstream.KeyValueConfig{
			{Bucket: EventsCatalogBucket, Description: "Events, ticket types, organisers and seat counters", History: 5, Storage: jetstream.FileStorage, Replicas: r},
			{Bucket: EventsRegistrationsBucket, Description: "Event registrations and the per-participant index", History: 5, Storage: jetstream.FileStorage, Replicas: r},
		},
	}
}
