package enricher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"golang.org/x/sync/errgroup"

	"jetfleet/subjects"
)

// Store is the Enricher's state: users and subscriptions in KV buckets
// sharded by user uuid, behind a bounded LRU cache per partition.
//
// The cache is write-through and trusted because a partition has one owner
// at a time and all of a user's events are in one partition: nobody else
// writes the keys the owner caches. When a partition changes hands its
// cache is dropped (Forget), since the other owner may have written
// meanwhile. Misses are not cached: a late dimension must be seen as soon as
// it is stored.
type Store struct {
	js          jetstream.JetStream
	users, subs [subjects.EnricherStateShards]jetstream.KeyValue
	caches      []*lru.Cache[string, entry]
	timeout     time.Duration

	hits, misses atomic.Uint64
}

// OpenStore opens the state buckets (provisioned by subjects.Provision) with
// a cache of cacheSize entries in all, split over the partitions.
func OpenStore(ctx context.Context, js jetstream.JetStream, cacheSize int, timeout time.Duration) (*Store, error) {
	s := &Store{js: js, timeout: timeout}
	for i := range subjects.EnricherStateShards {
		var err error
		if s.users[i], err = js.KeyValue(ctx, subjects.EnricherUsersBucket(i)); err != nil {
			return nil, fmt.Errorf("open %s: %w", subjects.EnricherUsersBucket(i), err)
		}
		if s.subs[i], err = js.KeyValue(ctx, subjects.EnricherSubsBucket(i)); err != nil {
			return nil, fmt.Errorf("open %s: %w", subjects.EnricherSubsBucket(i), err)
		}
	}
	per := max(cacheSize/subjects.EnricherPartitions, 16)
	for range subjects.EnricherPartitions {
		c, err := lru.New[string, entry](per)
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		s.caches = append(s.caches, c)
	}
	return s, nil
}

// CacheStats returns the cache hits and misses so far.
func (s *Store) CacheStats() (hits, misses uint64) { return s.hits.Load(), s.misses.Load() }

// Forget drops partition p's cache.
func (s *Store) Forget(p int) { s.caches[p].Purge() }

// User returns the state of user uuid, nil when unknown.
func (s *Store) User(ctx context.Context, p int, uuid string) (*subjects.UserState, error) {
	var u subjects.UserState
	found, err := s.get(ctx, p, "u:"+uuid, s.users[subjects.EnricherShardOf(uuid)], uuid, &u)
	if !found || err != nil {
		return nil, err
	}
	return &u, nil
}

// Subscription returns the state of userUUID's subscription in language,
// nil when unknown.
func (s *Store) Subscription(ctx context.Context, p int, userUUID, language string) (*subjects.SubscriptionState, error) {
	var sub subjects.SubscriptionState
	key := subjects.EnricherSubKey(userUUID, language)
	found, err := s.get(ctx, p, "s:"+key, s.subs[subjects.EnricherShardOf(userUUID)], key, &sub)
	if !found || err != nil {
		return nil, err
	}
	return &sub, nil
}

// PutUser stores u.
func (s *Store) PutUser(ctx context.Context, p int, u *subjects.UserState) error {
	return s.put(ctx, p, "u:"+u.UUID, s.users[subjects.EnricherShardOf(u.UUID)], u.UUID, u)
}

// PutSubscription stores sub.
func (s *Store) PutSubscription(ctx context.Context, p int, sub *subjects.SubscriptionState) error {
	key := subjects.EnricherSubKey(sub.UserUUID, sub.Language)
	return s.put(ctx, p, "s:"+key, s.subs[subjects.EnricherShardOf(sub.UserUUID)], key, sub)
}

// entry is a cached state record. prefetched marks one loaded by Prefetch
// and not read since: its first read counts as the miss it would have been.
type entry struct {
	v          any
	prefetched bool
}

// get fills dst (a pointer to a state struct) from the cache or the bucket.
func (s *Store) get(ctx context.Context, p int, cacheKey string, kv jetstream.KeyValue, key string, dst any) (bool, error) {
	if e, ok := s.caches[p].Get(cacheKey); ok {
		if e.prefetched {
			s.misses.Add(1)
			s.caches[p].Add(cacheKey, entry{v: e.v})
		} else {
			s.hits.Add(1)
		}
		switch d := dst.(type) {
		case *subjects.UserState:
			*d = *e.v.(*subjects.UserState)
		case *subjects.SubscriptionState:
			*d = *e.v.(*subjects.SubscriptionState)
		}
		return true, nil
	}
	s.misses.Add(1)
	return s.load(ctx, p, cacheKey, kv, key, dst, false)
}

// load reads key from kv into dst and caches it.
func (s *Store) load(ctx context.Context, p int, cacheKey string, kv jetstream.KeyValue, key string, dst any, prefetched bool) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	entry, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read state %s/%s: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(entry.Value(), dst); err != nil {
		// A corrupt record is treated as unknown and overwritten by the
		// next event rather than blocking the partition forever.
		return false, nil
	}
	s.remember(p, cacheKey, dst, prefetched)
	return true, nil
}

func (s *Store) put(ctx context.Context, p int, cacheKey string, kv jetstream.KeyValue, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode state %s: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := kv.Put(ctx, key, data); err != nil {
		// The cache may now be ahead of or behind the bucket: drop the key.
		s.caches[p].Remove(cacheKey)
		return fmt.Errorf("write state %s/%s: %w", kv.Bucket(), key, err)
	}
	s.remember(p, cacheKey, v, false)
	return nil
}

// remember caches a copy, so callers may keep changing theirs.
func (s *Store) remember(p int, cacheKey string, v any, prefetched bool) {
	switch d := v.(type) {
	case *subjects.UserState:
		c := *d
		s.caches[p].Add(cacheKey, entry{v: &c, prefetched: prefetched})
	case *subjects.SubscriptionState:
		c := *d
		s.caches[p].Add(cacheKey, entry{v: &c, prefetched: prefetched})
	}
}

// SubKey names one subscription for Prefetch.
type SubKey struct{ UserUUID, Language string }

// Prefetch loads into partition p's cache the users and subscriptions not
// cached yet, with one batched direct get (multi-last) per bucket instead of
// one request per key. Errors are left for the reads that follow to meet
// (and retry); unknown keys are not cached.
func (s *Store) Prefetch(ctx context.Context, p int, users []string, subs []SubKey) {
	var userKeys, subKeys [subjects.EnricherStateShards][]string
	for _, u := range users {
		if !s.caches[p].Contains("u:" + u) {
			sh := subjects.EnricherShardOf(u)
			userKeys[sh] = append(userKeys[sh], u)
		}
	}
	for _, k := range subs {
		key := subjects.EnricherSubKey(k.UserUUID, k.Language)
		if !s.caches[p].Contains("s:" + key) {
			sh := subjects.EnricherShardOf(k.UserUUID)
			subKeys[sh] = append(subKeys[sh], key)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var g errgroup.Group
	for sh := range subjects.EnricherStateShards {
		if keys := userKeys[sh]; len(keys) > 0 {
			g.Go(func() error {
				s.loadMany(ctx, p, s.users[sh].Bucket(), "u:", keys, func() any { return &subjects.UserState{} })
				return nil
			})
		}
		if keys := subKeys[sh]; len(keys) > 0 {
			g.Go(func() error {
				s.loadMany(ctx, p, s.subs[sh].Bucket(), "s:", keys, func() any { return &subjects.SubscriptionState{} })
				return nil
			})
		}
	}
	_ = g.Wait()
}

// loadMany reads the last value of each key of bucket in one multi-last
// direct get and caches what it finds as prefetched.
func (s *Store) loadMany(ctx context.Context, p int, bucket, cachePrefix string, keys []string, newState func() any) {
	subs := make([]string, len(keys))
	for i, k := range keys {
		subs[i] = subjects.KVPutSubject(bucket, k)
	}
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, s.js, "KV_"+bucket, subs)
	if err != nil {
		return
	}
	prefix := subjects.KVPutSubject(bucket, "")
	for m, err := range msgs {
		if err != nil {
			return // ErrNoMessages when none exist; other errors: the reads retry
		}
		if m.Header.Get("KV-Operation") != "" {
			continue // a delete or purge marker: unknown
		}
		st := newState()
		if json.Unmarshal(m.Data, st) != nil {
			continue
		}
		key := strings.TrimPrefix(m.Subject, prefix)
		s.remember(p, cachePrefix+key, st, true)
	}
}
