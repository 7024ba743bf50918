// Package chat is the live event app's chat store: posting a message (once,
// however often a client retries), reading a room's history forwards and
// backwards by stream sequence, and a person's messages for GDPR export and
// deletion. Messages live on subjects.EventsChatStream, one subject per
// event, room and author; the edges' hub (web/chathub) fans them out.
package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Message is a stored chat message; its ID is the stream sequence.
type Message = subjects.EventsChatMessage

// MaxRunes is the longest message, in characters.
const MaxRunes = 2000

// Errors of a post the author can fix.
var (
	ErrEmpty   = errors.New("the message is empty")
	ErrTooLong = fmt.Errorf("a message holds at most %d characters", MaxRunes)
	ErrInvalid = errors.New("the message is not valid text")
)

// CleanText returns the text of a post as stored: trimmed, line breaks and
// tabs kept, other control characters refused. Escaping is the renderer's
// business; the text is stored as the author wrote it.
func CleanText(text string) (string, error) {
	if !utf8.ValidString(text) {
		return "", ErrInvalid
	}
	text = strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
	if text == "" {
		return "", ErrEmpty
	}
	if utf8.RuneCountInString(text) > MaxRunes {
		return "", ErrTooLong
	}
	if strings.ContainsFunc(text, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
		return "", ErrInvalid
	}
	return text, nil
}

// ValidClientID reports whether id can be a client's message id: 1–64
// letters, digits, '-' or '_' (it becomes part of a Nats-Msg-Id).
func ValidClientID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Store reads and writes chat messages.
type Store struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	now func() time.Time
}

// Open returns the store; EVENTS_CHAT must exist (subjects.Provision).
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	if _, err := js.Stream(ctx, subjects.EventsChatStream); err != nil {
		return nil, fmt.Errorf("open chat stream: %w", err)
	}
	return &Store{nc: js.Conn(), js: js, now: time.Now}, nil
}

// Post stores m (its text already cleaned) once per (author, clientID): a
// retry of the same post returns the stored message with dup set. It also
// records the engagement (one per stored message, idempotent too), so a
// retry after a failure part way completes what the first attempt began.
func (s *Store) Post(ctx context.Context, m Message, clientID string) (Message, bool, error) {
	m.ClientID = clientID
	if m.At.IsZero() {
		m.At = s.now().UTC()
	}
	data, err := json.Marshal(m)
	if err != nil {
		return Message{}, false, err
	}
	ack, err := s.js.Publish(ctx, subjects.EventsChatSubject(m.EventID, m.Room, m.UserID), data,
		jetstream.WithMsgID(subjects.EventsChatMsgID(m.EventID, m.UserID, clientID)),
		jetstream.WithMsgTTL(subjects.EventsChatTTL))
	if err != nil {
		return Message{}, false, fmt.Errorf("store chat message: %w", err)
	}
	m.ID = ack.Sequence
	e := subjects.EventsEngagement{Kind: subjects.EngagementMessage, EventID: m.EventID,
		ID: strconv.FormatUint(m.ID, 10), UserID: m.UserID, Room: m.Room, Ref: m.AuthorID, At: m.At}
	ed, _ := json.Marshal(e)
	if _, err := s.js.Publish(ctx, subjects.EventsEngagementSubject(m.EventID, e.Kind), ed,
		jetstream.WithMsgID(subjects.EventsEngagementMsgID(e))); err != nil {
		return m, ack.Duplicate, fmt.Errorf("record chat engagement: %w", err)
	}
	return m, ack.Duplicate, nil
}

// LastSeq is the stream's last sequence: every message stored so far has
// a sequence at most this.
func (s *Store) LastSeq(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, subjects.EventsChatStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("chat stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// After returns up to limit messages of the room with a sequence above
// after and at most upTo (0: no bound), oldest first.
func (s *Store) After(ctx context.Context, eventID, room string, after, upTo uint64, limit int) ([]Message, error) {
	var out []Message
	err := s.scan(ctx, subjects.EventsChatRoomFilter(eventID, room), after+1, func(m Message) bool {
		if upTo > 0 && m.ID > upTo {
			return false
		}
		out = append(out, m)
		return len(out) < limit
	})
	return out, err
}

// Before returns the last n messages of the room with a sequence below
// before (0: the newest), oldest first, and whether earlier ones exist.
// A room's messages are spread among every other room's, so it reads
// windows of the stream ending at before, each 8 times the last, until
// one holds n+1 of the room's messages or reaches the stream's start.
func (s *Store) Before(ctx context.Context, eventID, room string, before uint64, n int) ([]Message, bool, error) {
	if before == 0 {
		last, err := s.LastSeq(ctx)
		if err != nil {
			return nil, false, err
		}
		before = last + 1
	}
	filter := subjects.EventsChatRoomFilter(eventID, room)
	for w := uint64(64 * n); ; w *= 8 {
		start := uint64(1)
		if before > w {
			start = before - w
		}
		// Keep the last n+1 of the window: one more than asked tells
		// whether earlier ones exist.
		var ring []Message
		err := s.scan(ctx, filter, start, func(m Message) bool {
			if m.ID >= before {
				return false
			}
			ring = append(ring, m)
			if len(ring) > n+1 {
				ring = ring[1:]
			}
			return true
		})
		if err != nil {
			return nil, false, err
		}
		if len(ring) > n {
			return ring[1:], true, nil
		}
		if start == 1 {
			return ring, false, nil
		}
	}
}

// OfUser returns every message the account uid wrote, in any event.
func (s *Store) OfUser(ctx context.Context, uid string) ([]Message, error) {
	var out []Message
	err := s.scan(ctx, subjects.EventsChatAuthorFilter(uid), 1, func(m Message) bool {
		out = append(out, m)
		return true
	})
	return out, err
}

// ForgetUser deletes every message the account uid wrote and returns how
// many it deleted. Running it again deletes nothing more.
func (s *Store) ForgetUser(ctx context.Context, uid string) (int, error) {
	msgs, err := s.OfUser(ctx, uid)
	if err != nil {
		return 0, err
	}
	st, err := s.js.Stream(ctx, subjects.EventsChatStream)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range msgs {
		switch err := st.DeleteMsg(ctx, m.ID); {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return n, fmt.Errorf("delete chat message %d: %w", m.ID, err)
		default:
			n++
		}
	}
	return n, nil
}

// scanBatch is how many messages one direct-get request returns.
const scanBatch = 256

// scan calls f with each message matching filter from sequence from on,
// oldest first, until f returns false or none is left. It uses batched
// direct gets ($JS.API.DIRECT.GET), which any replica serves and which
// skip other subjects in the server's index.
func (s *Store) scan(ctx context.Context, filter string, from uint64, f func(Message) bool) error {
	subj := "$JS.API.DIRECT.GET." + subjects.EventsChatStream
	for {
		req, _ := json.Marshal(map[string]any{"seq": from, "next_by_subj": filter, "batch": scanBatch})
		inbox := s.nc.NewRespInbox()
		sub, err := s.nc.SubscribeSync(inbox)
		if err != nil {
			return err
		}
		if err := s.nc.PublishRequest(subj, inbox, req); err != nil {
			sub.Unsubscribe()
			return err
		}
		var last uint64
		pending, done := uint64(0), false
		for !done {
			msg, err := sub.NextMsgWithContext(ctx)
			if err != nil {
				sub.Unsubscribe()
				return fmt.Errorf("read chat history: %w", err)
			}
			switch msg.Header.Get("Status") {
			case "404":
				sub.Unsubscribe()
				return nil
			case "204":
				pending, _ = strconv.ParseUint(msg.Header.Get("Nats-Num-Pending"), 10, 64)
				done = true
				continue
			case "":
			default:
				sub.Unsubscribe()
				return fmt.Errorf("read chat history: status %s %s", msg.Header.Get("Status"), msg.Header.Get("Description"))
			}
			seq, _ := strconv.ParseUint(msg.Header.Get("Nats-Sequence"), 10, 64)
			last = seq
			var m Message
			if err := json.Unmarshal(msg.Data, &m); err != nil {
				continue // not ours to show; never stops the history
			}
			m.ID = seq
			if !f(m) {
				sub.Unsubscribe()
				return nil
			}
		}
		sub.Unsubscribe()
		if pending == 0 || last == 0 {
			return nil
		}
		from = last + 1
	}
}
