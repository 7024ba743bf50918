package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Chat of the live event app (seed 001, "Text Chat", "Team Chat"): every
// message is stored once on EventsChatStream, on a subject per event, room
// and author, with a per-message TTL of EventsChatTTL (the seed's GDPR
// rule: chat is gone after 25 days whatever else happens). Each edge reads
// only the rooms it has sockets for, through one ordered consumer per room
// filtered on EventsChatRoomFilter, and fans out to its sockets locally.
// The author's account id in the subject lets a GDPR request find and
// delete a person's messages without reading anyone else's
// (EventsChatAuthorFilter).
const (
	// EventsChatStream holds chat messages:
	// eventschat.<event-id>.<room>.<author account id>.
	EventsChatStream = "EVENTS_CHAT"
	// EventsChatTTL is every chat message's life (Nats-TTL).
	EventsChatTTL = 25 * 24 * time.Hour
	// EventsChatDuplicates is how long a client may retry a post with the
	// same client message id and still have it stored once.
	EventsChatDuplicates = 10 * time.Minute

	eventsChatPrefix = "eventschat."
)

// EventsChatSubject is the subject of a message by author (account id) in
// room ("main" or a team id) of event eventID.
func EventsChatSubject(eventID, room, author string) string {
	return eventsChatPrefix + eventID + "." + room + "." + author
}

// EventsChatRoomFilter matches every message of one room.
func EventsChatRoomFilter(eventID, room string) string {
	return eventsChatPrefix + eventID + "." + room + ".*"
}

// EventsChatAuthorFilter matches every message one account wrote, in any
// event and room.
func EventsChatAuthorFilter(author string) string {
	return eventsChatPrefix + "*.*." + author
}

// EventsChatMsgID is the Nats-Msg-Id of a post: the author's account and
// the id their client gave the message, so a retry after a dropped
// connection (on any edge) is stored once.
func EventsChatMsgID(eventID, author, clientID string) string {
	return "chat." + eventID + "." + author + "." + clientID
}

// EventsChatMessage is the payload of every message on EventsChatStream.
type EventsChatMessage struct {
	// ID is the message's stream sequence: not stored in the payload
	// (it is known only once stored), filled in by readers. Clients
	// resume and page by it.
	ID      uint64 `json:"-"`
	EventID string `json:"event_id"`
	Room    string `json:"room"`
	// UserID is the author's account (also the subject's last token).
	UserID string `json:"user_id"`
	// AuthorID is the author as the event's figures know them
	// (events.Member.EngagementID: the registration id, or admin:<account>
	// for an admin without a ticket).
	AuthorID string    `json:"author_id"`
	Name     string    `json:"name"`
	Admin    bool      `json:"admin,omitempty"`
	Text     string    `json:"text"`
	At       time.Time `json:"at"`
	// ClientID is the id the author's client gave the post, so it can
	// match the stored message to what it sent.
	ClientID string `json:"client_id,omitempty"`
}

func eventsChatAssets(o Options) assetSet {
	return assetSet{Streams: []jetstream.StreamConfig{{
		Name:        EventsChatStream,
		Description: "Live event chat (eventschat.<event-id>.<room>.<author>), each message kept 25 days (Nats-TTL)",
		Subjects:    []string{eventsChatPrefix + "*.*.*"},
		Retention:   jetstream.LimitsPolicy,
		// Every message carries its own TTL; MaxAge is the backstop for
		// one published without it.
		MaxAge:      EventsChatTTL,
		AllowMsgTTL: true,
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas(),
		Duplicates:  EventsChatDuplicates,
		// History pages are read with direct gets, served by any replica.
		AllowDirect: true,
	}}}
}
