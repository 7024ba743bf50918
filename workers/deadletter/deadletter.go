// Package deadletter is the DLQ stream's one gateway: Write copies a message
// being given up on into it (the consumer runtime, workers/consume, calls it
// when a message fails permanently or exhausts MaxDeliver), Sweep does the
// same for messages the server stopped redelivering by itself (advisories),
// and List, Get, Replay and ReplayAll read and replay the entries for
// operators (`jetfleet dlq ls|show|replay`). It handles no message itself.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// ErrNotFound is returned for a DLQ sequence that holds no entry.
var ErrNotFound = errors.New("dead letter not found")

// Entry is one dead-lettered message with the reason it was given up on.
type Entry struct {
	Seq        uint64 // sequence in the DLQ stream
	Origin     string // subject the message was first published to
	Stream     string
	Consumer   string
	OriginSeq  uint64
	Deliveries int
	Error      string
	Time       time.Time
	Header     nats.Header
	Data       []byte
}

func entryFrom(seq uint64, h nats.Header, data []byte) Entry {
	e := Entry{
		Seq:      seq,
		Origin:   h.Get(subjects.HeaderDLQSubject),
		Stream:   h.Get(subjects.HeaderDLQStream),
		Consumer: h.Get(subjects.HeaderDLQConsumer),
		Error:    h.Get(subjects.HeaderDLQError),
		Header:   h,
		Data:     data,
	}
	e.OriginSeq, _ = strconv.ParseUint(h.Get(subjects.HeaderDLQSequence), 10, 64)
	e.Deliveries, _ = strconv.Atoi(h.Get(subjects.HeaderDLQDeliveries))
	e.Time, _ = time.Parse(time.RFC3339, h.Get(subjects.HeaderDLQTime))
	return e
}

// List returns the dead letters of one origin stream (all when stream is
// empty; every partition of the Enricher's input for
// subjects.EnricherInputStreams), oldest first, at most limit (0: no limit). It streams the DLQ
// through an ordered consumer rather than reading entries one by one.
func List(ctx context.Context, js jetstream.JetStream, stream string, limit int) ([]Entry, error) {
	cons, err := js.OrderedConsumer(ctx, subjects.DLQStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects.DLQFilters(stream),
	})
	if err != nil {
		return nil, fmt.Errorf("open dlq reader: %w", err)
	}
	pending := cons.CachedInfo().NumPending
	var out []Entry
	for pending > 0 && (limit == 0 || len(out) < limit) {
		batch, err := cons.Fetch(min(int(pending), 500), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read dlq: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read dlq: %w", err)
			}
			out = append(out, entryFrom(md.Sequence.Stream, m.Headers(), m.Data()))
			pending = md.NumPending
			if limit > 0 && len(out) == limit {
				break
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("read dlq: %w", err)
		}
		if got == 0 {
			break
		}
	}
	return out, nil
}

// Get returns the entry at DLQ sequence seq.
func Get(ctx context.Context, js jetstream.JetStream, seq uint64) (Entry, error) {
	s, err := js.Stream(ctx, subjects.DLQStream)
	if err != nil {
		return Entry{}, fmt.Errorf("open dlq: %w", err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Entry{}, fmt.Errorf("dlq sequence %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("read dlq sequence %d: %w", seq, err)
	}
	return entryFrom(m.Sequence, m.Header, m.Data), nil
}

// Replay publishes the entry at seq back to its origin subject, with its
// original headers, and removes it from the DLQ. The publish carries a
// message id derived from the DLQ sequence, so a replay interrupted between
// the publish and the removal and then run again publishes once.
func Replay(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	e, err := Get(ctx, js, seq)
	if err != nil {
		return err
	}
	return replay(ctx, js, e)
}

// ReplayAll replays every entry of one origin stream (all when stream is
// empty) whose origin subject is subject (any when subject is empty). It
// returns how many entries it replayed.
func ReplayAll(ctx context.Context, js jetstream.JetStream, stream, subject string) (int, error) {
	entries, err := List(ctx, js, stream, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if subject != "" && e.Origin != subject {
			continue
		}
		if err := replay(ctx, js, e); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func replay(ctx context.Context, js jetstream.JetStream, e Entry) error {
	if e.Origin == "" {
		return fmt.Errorf("dlq sequence %d has no %s header; cannot replay", e.Seq, subjects.HeaderDLQSubject)
	}
	out := nats.NewMsg(e.Origin)
	out.Data = e.Data
	for k, vs := range e.Header {
		if strings.HasPrefix(k, "Jetfleet-Dlq-") || strings.HasPrefix(k, "Nats-") {
			continue
		}
		out.Header[k] = vs
	}
	out.Header.Set(subjects.HeaderDLQReplayed, strconv.FormatUint(e.Seq, 10))
	out.Header.Set(jetstream.MsgIDHeader, "replay:dlq:"+strconv.FormatUint(e.Seq, 10))
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("replay dlq sequence %d to %s: %w", e.Seq, e.Origin, err)
	}
	s, err := js.Stream(ctx, subjects.DLQStream)
	if err != nil {
		return fmt.Errorf("open dlq: %w", err)
	}
	if err := s.DeleteMsg(ctx, e.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("remove replayed dlq sequence %d: %w", e.Seq, err)
	}
	return nil
}
