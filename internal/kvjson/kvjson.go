// Package kvjson keeps JSON records in JetStream KV buckets: read one with
// its revision, write one, and change one under compare-and-set, reading
// again when another writer got in between. It is infrastructure for the
// domain stores (abtest, tracking, media…), so the compare-and-set loop
// and its conflict test are written once.
package kvjson

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrContended is returned (wrapped with the key) by Update when it lost
// the race to other writers as many times as it was allowed to try.
var ErrContended = errors.New("too many concurrent writers")

// Get decodes the record at key into v and returns its revision. A key
// that holds no record — never written, deleted, or not a valid key, so
// never writable — answers notFound wrapped with the key: each store keeps
// its own domain error.
func Get(ctx context.Context, kv jetstream.KeyValue, key string, v any, notFound error) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) || errors.Is(err, jetstream.ErrInvalidKey) {
		return 0, fmt.Errorf("%s: %w", key, notFound)
	}
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return e.Revision(), nil
}

// Put writes v at key, whatever is there.
func Put(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if _, err := kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Conflict tells whether err, from a Create, an Update or a delete with
// jetstream.LastRevision, means that another writer changed the key first.
// nats.go documents that replicated streams may report a lost update with
// another error code (10164) than 10071; ErrKeyRevisionMismatch covers
// both, so no caller tests the code itself.
func Conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// Update reads the record at key (notFound as Get), applies change to it
// and writes it back at the revision it read. When another writer changed
// the record in between, it reads again and applies change to the new
// record, at most tries times in all: every round some writer wins, so a
// few suffice, and the bound only stops a pathological loop (then
// ErrContended). change returning an error abandons the update with that
// error, unwrapped, writing nothing. Update returns the record as written
// (or as change left it when it failed).
func Update[T any](ctx context.Context, kv jetstream.KeyValue, key string, notFound error, tries int, change func(*T) error) (T, error) {
	for range max(tries, 1) {
		var v T
		rev, err := Get(ctx, kv, key, &v, notFound)
		if err != nil {
			return v, err
		}
		if err := change(&v); err != nil {
			return v, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return v, fmt.Errorf("encode %s: %w", key, err)
		}
		_, err = kv.Update(ctx, key, b, rev)
		if err == nil {
			return v, nil
		}
		if !Conflict(err) {
			return v, fmt.Errorf("update %s: %w", key, err)
		}
	}
	var zero T
	return zero, fmt.Errorf("update %s: %w", key, ErrContended)
}
