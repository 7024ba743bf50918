package subjects

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Engagement in the live event app (seed 001, "Analytics and exports"):
// first connects, heartbeats, messages, help flags and submissions. The
// edges publish one EventsEngagement per occurrence; the events-engagement
// role writes them to ClickHouse through the batch writer, where every
// figure of the live dashboard, the post-event summary and the fee is
// counted. Counting is exact under redelivery and across edges and tabs
// because each occurrence carries an ID and figures count distinct IDs:
// a heartbeat's ID is its participant and minute, so two tabs in the same
// minute are one connected minute.
const (
	// EventsEngagementStream is the work queue from the edges to the
	// events-engagement role: eventsengagement.<event-id>.<kind>.
	EventsEngagementStream = "EVENTS_ENGAGEMENT"
	// EventsEngagementConsumer is the durable consumer of the
	// events-engagement role.
	EventsEngagementConsumer = "events-engagement"

	eventsEngagementPrefix = "eventsengagement."
)

// Kinds of engagement.
const (
	EngagementConnected    = "connected"    // first connect of a participant to the event app (ID: user)
	EngagementHeartbeat    = "heartbeat"    // the app is open this minute (ID: user.minute-unix)
	EngagementMessage      = "message"      // a chat message was posted (ID: chat stream sequence; Ref: the author's engagement id)
	EngagementHelpRaised   = "helpraised"   // a team asked for help (ID: flag id; Ref: flag id)
	EngagementHelpClaimed  = "helpclaimed"  // an admin claimed a flag (ID: flag id; Ref: flag id)
	EngagementHelpResolved = "helpresolved" // an admin resolved a flag (ID: flag id; Ref: flag id)
	EngagementSubmitted    = "submitted"    // a team submitted or updated its project (ID: submission id.version)
)

// EventsEngagementSubject is the subject of an engagement of kind in event id.
func EventsEngagementSubject(eventID, kind string) string {
	return eventsEngagementPrefix + eventID + "." + kind
}

// EventsEngagement is the payload of every message on EventsEngagementStream.
type EventsEngagement struct {
	Kind    string `json:"kind"`
	EventID string `json:"event_id"`
	// ID identifies the occurrence within its event and kind; figures
	// count distinct IDs, so a repeat is never counted twice. It is also
	// the message's Nats-Msg-Id (with event and kind) for the stream's
	// duplicate window.
	ID     string    `json:"id"`
	UserID string    `json:"user_id,omitempty"`
	Room   string    `json:"room,omitempty"` // "main" or the team id
	Ref    string    `json:"ref,omitempty"`
	At     time.Time `json:"at"`
}

// EventsEngagementMsgID is the Nats-Msg-Id of an engagement.
func EventsEngagementMsgID(e EventsEngagement) string {
	return e.EventID + "." + e.Kind + "." + e.ID
}

// HeartbeatID is the ID of a heartbeat of user in the minute holding at.
func HeartbeatID(userID string, at time.Time) string {
	return userID + "." + strconv.FormatInt(at.UTC().Truncate(time.Minute).Unix(), 10)
}

func eventsEngagementAssets(o Options) assetSet {
	r := o.replicas()
	return assetSet{
		Streams: []jetstream.StreamConfig{{
			Name:        EventsEngagementStream,
			Description: "Live event app engagement (eventsengagement.<event-id>.<kind>) on its way to ClickHouse",
			Subjects:    []string{eventsEngagementPrefix + "*.*"},
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      7 * 24 * time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			// Two tabs of one participant send the same heartbeat ID in
			// the same minute; the window drops the second at the
			// server. ClickHouse counts distinct IDs for what slips by.
			Duplicates: 2 * time.Minute,
		}},
		Consumers: map[string][]jetstream.ConsumerConfig{EventsEngagementStream: {{
			Durable:       EventsEngagementConsumer,
			Description:   "events-engagement role: engagement into ClickHouse (batch writer)",
			FilterSubject: eventsEngagementPrefix + "*.*",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    8,
			MaxAckPending: 20000,
			Replicas:      r,
		}}},
	}
}
