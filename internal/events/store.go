package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Keys. Ids are random URL-safe base64 without '-' or '_' problems for KV
// (both are valid key characters).
func eventKey(id string) string         { return "event." + id }
func orgIndexKey(uid, id string) string { return "org." + uid + "." + id }
func organiserKey(uid string) string    { return "organiser." + uid }
func seatsKey(id string) string         { return "seats." + id }
func regKey(eid, rid string) string     { return "reg." + eid + "." + rid }
func personKey(email, eid, rid string) string {
	return "person." + EmailHash(email) + "." + eid + "." + rid
}

// EmailHash is how a participant's address appears in keys: never in clear.
func EmailHash(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:16])
}

func getJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string) (T, uint64, error) {
	var v T
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return v, 0, ErrNotFound
	}
	if err != nil {
		return v, 0, fmt.Errorf("get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return v, e.Revision(), nil
}

// publish records a domain event, retrying until the stream acknowledges
// it (a leader election takes a few seconds) or ctx ends. Its Nats-Msg-Id,
// derived from the state change, makes retries — and a repeated call of an
// idempotent operation, which publishes again — count once within the
// stream's duplicate window. Callers fail their request when it fails, and
// re-publish when the same request is repeated, so a saved state change
// whose event was not acknowledged gets it on the retry.
func (s *Service) publish(ctx context.Context, ev subjects.EventsDomainEvent, msgID string) error {
	ev.At = s.now()
	b, _ := json.Marshal(ev)
	if err := s.publishRetrying(ctx, subjects.EventsSubject(ev.Kind, ev.EventID), b, jetstream.WithMsgID(msgID)); err != nil {
		s.cfg.Log.Error("publish domain event", "kind", ev.Kind, "event", ev.EventID, "msg_id", msgID, "err", err)
		return fmt.Errorf("publish %s event: %w", ev.Kind, err)
	}
	return nil
}

// publishRetrying publishes, retrying a failed publish with backoff (five
// tries over about 1.5 s) so a JetStream leader change does not fail the
// request. Callers pass a message id: a retried publish that did land is
// deduplicated.
func (s *Service) publishRetrying(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) error {
	var err error
	for attempt, wait := 0, 100*time.Millisecond; attempt < 5; attempt, wait = attempt+1, wait*2 {
		if _, err = s.js.Publish(ctx, subject, data, opts...); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
	return err
}

func listKeys(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	lister, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// watchAll reads the latest value of every key of kv matching filter in
// one pass: a KV watch delivers each key's value, then a nil marker.
func watchAll[T any](ctx context.Context, kv jetstream.KeyValue, filter string) ([]T, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []T
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch ended")
			}
			if e == nil {
				return out, nil
			}
			var v T
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				return nil, fmt.Errorf("decode %s: %w", e.Key(), err)
			}
			out = append(out, v)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	return b
}
