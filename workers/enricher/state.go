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
	getter      *multiGetter
	users, subs []jetstream.KeyValue // by shard
	// Per partition, users by uuid and subscriptions by key: typed keys,
	// so a lookup builds no string.
	userCache []*lru.Cache[string, entry[subjects.EnricherUserState]]
	subCache  []*lru.Cache[SubKey, entry[subjects.EnricherSubscriptionState]]
	timeout   time.Duration

	hits, misses atomic.Uint64
}

// OpenStore opens the state buckets (provisioned by subjects.Provision, as
// many shards as INPUT records) with a cache of cacheSize entries in all,
// split over the partitions.
func OpenStore(ctx context.Context, js jetstream.JetStream, cacheSize int, timeout time.Duration) (*Store, error) {
	shards, err := subjects.EnricherShards(ctx, js)
	if err != nil {
		return nil, err
	}
	s := &Store{timeout: timeout, users: make([]jetstream.KeyValue, shards), subs: make([]jetstream.KeyValue, shards)}
	for i := range shards {
		if s.users[i], err = js.KeyValue(ctx, subjects.EnricherUsersBucket(i)); err != nil {
			return nil, fmt.Errorf("open %s: %w", subjects.EnricherUsersBucket(i), err)
		}
		if s.subs[i], err = js.KeyValue(ctx, subjects.EnricherSubsBucket(i)); err != nil {
			return nil, fmt.Errorf("open %s: %w", subjects.EnricherSubsBucket(i), err)
		}
	}
	// A user has about as many subscriptions as users have languages:
	// give each kind half.
	per := max(cacheSize/subjects.EnricherPartitions/2, 16)
	for range subjects.EnricherPartitions {
		uc, err := lru.New[string, entry[subjects.EnricherUserState]](per)
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		sc, err := lru.New[SubKey, entry[subjects.EnricherSubscriptionState]](per)
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		s.userCache, s.subCache = append(s.userCache, uc), append(s.subCache, sc)
	}
	if s.getter, err = newMultiGetter(js); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops the store's reply subscription. The buckets stay as they are.
func (s *Store) Close() error { return s.getter.close() }

// CacheStats returns the cache hits and misses so far.
func (s *Store) CacheStats() (hits, misses uint64) { return s.hits.Load(), s.misses.Load() }

// Forget drops partition p's cache.
func (s *Store) Forget(p int) {
	s.userCache[p].Purge()
	s.subCache[p].Purge()
}

// User returns the state of user uuid, nil when unknown.
func (s *Store) User(ctx context.Context, p int, uuid string) (*subjects.EnricherUserState, error) {
	return get(ctx, s, s.userCache[p], uuid, s.users[s.shardOf(uuid)], uuid)
}

// Subscription returns the state of userUUID's subscription in language,
// nil when unknown.
func (s *Store) Subscription(ctx context.Context, p int, userUUID, language string) (*subjects.EnricherSubscriptionState, error) {
	return get(ctx, s, s.subCache[p], SubKey{userUUID, language}, s.subs[s.shardOf(userUUID)],
		subjects.EnricherSubKey(userUUID, language))
}

// PutUser stores u.
func (s *Store) PutUser(ctx context.Context, p int, u *subjects.EnricherUserState) error {
	return put(ctx, s, s.userCache[p], u.UUID, s.users[s.shardOf(u.UUID)], u.UUID, u)
}

// PutSubscription stores sub.
func (s *Store) PutSubscription(ctx context.Context, p int, sub *subjects.EnricherSubscriptionState) error {
	return put(ctx, s, s.subCache[p], SubKey{sub.UserUUID, sub.Language}, s.subs[s.shardOf(sub.UserUUID)],
		subjects.EnricherSubKey(sub.UserUUID, sub.Language), sub)
}

// entry is a cached state record, held by value (a copy: callers may keep
// changing theirs). prefetched marks one loaded by Prefetch and not read
// since: its first read counts as the miss it would have been.
type entry[T any] struct {
	v          T
	prefetched bool
}

// get returns a copy of the record from the cache or the bucket, nil when
// unknown.
func get[K comparable, T any](ctx context.Context, s *Store, c *lru.Cache[K, entry[T]], ck K, kv jetstream.KeyValue, key string) (*T, error) {
	if e, ok := c.Get(ck); ok {
		if e.prefetched {
			s.misses.Add(1)
			c.Add(ck, entry[T]{v: e.v})
		} else {
			s.hits.Add(1)
		}
		v := e.v
		return &v, nil
	}
	s.misses.Add(1)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	got, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s/%s: %w", kv.Bucket(), key, err)
	}
	var v T
	if err := json.Unmarshal(got.Value(), &v); err != nil {
		// A corrupt record is treated as unknown and overwritten by the
		// next event rather than blocking the partition forever.
		return nil, nil
	}
	c.Add(ck, entry[T]{v: v})
	return &v, nil
}

func put[K comparable, T any](ctx context.Context, s *Store, c *lru.Cache[K, entry[T]], ck K, kv jetstream.KeyValue, key string, v *T) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode state %s: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := kv.Put(ctx, key, data); err != nil {
		// The cache may now be ahead of or behind the bucket: drop the key.
		c.Remove(ck)
		return fmt.Errorf("write state %s/%s: %w", kv.Bucket(), key, err)
	}
	c.Add(ck, entry[T]{v: *v})
	return nil
}

func (s *Store) shardOf(userUUID string) int { return subjects.EnricherShardOf(userUUID, len(s.users)) }

// SubKey names one subscription for Prefetch.
type SubKey struct{ UserUUID, Language string }

// Prefetch loads into partition p's cache the users and subscriptions not
// cached yet, with one batched direct get (multi-last) per bucket instead of
// one request per key. Errors are left for the reads that follow to meet
// (and retry); unknown keys are not cached.
func (s *Store) Prefetch(ctx context.Context, p int, users []string, subs []SubKey) {
	s.prefetch(ctx, p, users, subs, true)
}

// Warm loads the users and subscriptions into partition p's cache as
// Prefetch does, as if read already (later reads count as hits): a
// benchmark's steady state, without the lessons it would take to reach it.
func (s *Store) Warm(ctx context.Context, p int, users []string, subs []SubKey) {
	s.prefetch(ctx, p, users, subs, false)
}

func (s *Store) prefetch(ctx context.Context, p int, users []string, subs []SubKey, prefetched bool) {
	userKeys, subKeys := make([][]string, len(s.users)), make([][]string, len(s.subs))
	for _, u := range users {
		if !s.userCache[p].Contains(u) {
			sh := s.shardOf(u)
			userKeys[sh] = append(userKeys[sh], u)
		}
	}
	for _, k := range subs {
		if !s.subCache[p].Contains(k) {
			sh := s.shardOf(k.UserUUID)
			subKeys[sh] = append(subKeys[sh], subjects.EnricherSubKey(k.UserUUID, k.Language))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var g errgroup.Group
	for sh := range s.users {
		if keys := userKeys[sh]; len(keys) > 0 {
			g.Go(func() error {
				loadMany(ctx, s.getter, s.userCache[p], s.users[sh].Bucket(), keys, prefetched, func(k string) string { return k })
				return nil
			})
		}
		if keys := subKeys[sh]; len(keys) > 0 {
			g.Go(func() error {
				loadMany(ctx, s.getter, s.subCache[p], s.subs[sh].Bucket(), keys, prefetched, func(k string) SubKey {
					u, lang := subjects.EnricherSubKeyParts(k)
					return SubKey{u, lang}
				})
				return nil
			})
		}
	}
	_ = g.Wait()
}

// loadMany reads the last value of each key of bucket in one multi-last
// direct get and caches what it finds (marked prefetched when asked).
func loadMany[K comparable, T any](ctx context.Context, g *multiGetter, c *lru.Cache[K, entry[T]], bucket string, keys []string, prefetched bool, cacheKey func(string) K) {
	subs := make([]string, len(keys))
	for i, k := range keys {
		subs[i] = subjects.KVPutSubject(bucket, k)
	}
	msgs, err := g.lastMsgs(ctx, "KV_"+bucket, subs)
	if err != nil {
		return // the reads that follow retry
	}
	prefix := subjects.KVPutSubject(bucket, "")
	for _, m := range msgs {
		if m.Header.Get("KV-Operation") != "" {
			continue // a delete or purge marker: unknown
		}
		var v T
		if json.Unmarshal(m.Data, &v) != nil {
			continue
		}
		c.Add(cacheKey(strings.TrimPrefix(m.Subject, prefix)), entry[T]{v: v, prefetched: prefetched})
	}
}
