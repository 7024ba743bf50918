// Package counterkeys issues and checks Counter API keys. A key is shown
// once when created; the COUNTER_APIKEYS bucket stores only its SHA-256 with
// the tenant it belongs to, so a leaked bucket does not leak keys.
package counterkeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// keyPrefix marks jetfleet counter keys so they are recognisable in configs
// and secret scanners.
const keyPrefix = "jfc_"

// ErrUnknownKey is returned for a key that does not exist or is disabled.
var ErrUnknownKey = errors.New("unknown or disabled API key")

// Store reads and writes API key records.
type Store struct {
	kv jetstream.KeyValue

	mu    sync.Mutex
	cache map[string]cached // by hash
	ttl   time.Duration
	// changes counts the bucket changes seen by the watch; a lookup that
	// raced with one does not cache what it read.
	changes uint64
}

type cached struct {
	rec subjects.CounterAPIKey
	err error
	at  time.Time
}

// Open opens the COUNTER_APIKEYS bucket. Lookups are cached for 30 s; a
// watch of the bucket, running until ctx ends, drops the cached entry of a
// key as soon as it is disabled or deleted on any process, so such a key
// stops working at once.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, subjects.CounterAPIKeysBucket)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", subjects.CounterAPIKeysBucket, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", subjects.CounterAPIKeysBucket, err)
	}
	s := &Store{kv: kv, cache: map[string]cached{}, ttl: 30 * time.Second}
	// The watch stops, and this goroutine ends, when ctx does.
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			s.mu.Lock()
			delete(s.cache, e.Key())
			s.changes++
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// Hash is the bucket key of an API key: hex SHA-256.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Create issues a new key for tenant. The returned key is the only copy.
func (s *Store) Create(ctx context.Context, tenant, name string, rateLimit float64) (string, subjects.CounterAPIKey, error) {
	tenant = strings.TrimSpace(tenant)
	if tenant == "" || len(tenant) > subjects.CounterMaxVideoID || strings.ContainsAny(tenant, " \t\r\n") {
		return "", subjects.CounterAPIKey{}, fmt.Errorf("tenant: %q must be 1-%d characters without spaces", tenant, subjects.CounterMaxVideoID)
	}
	b := make([]byte, 24)
	rand.Read(b)
	key := keyPrefix + base64.RawURLEncoding.EncodeToString(b)
	rec := subjects.CounterAPIKey{Tenant: tenant, Name: name, Prefix: key[:8], RateLimit: rateLimit, Created: time.Now().UTC()}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", rec, err
	}
	if _, err := s.kv.Create(ctx, Hash(key), data); err != nil {
		return "", rec, fmt.Errorf("store api key: %w", err)
	}
	return key, rec, nil
}

// Lookup returns the record of key, or ErrUnknownKey.
func (s *Store) Lookup(ctx context.Context, key string) (subjects.CounterAPIKey, error) {
	if !strings.HasPrefix(key, keyPrefix) || len(key) > 100 {
		return subjects.CounterAPIKey{}, ErrUnknownKey
	}
	h := Hash(key)
	s.mu.Lock()
	c, ok := s.cache[h]
	seen := s.changes
	s.mu.Unlock()
	if ok && time.Since(c.at) < s.ttl {
		return c.rec, c.err
	}
	rec, err := s.get(ctx, h)
	if err != nil && !errors.Is(err, ErrUnknownKey) {
		return rec, err // a transient failure is not cached
	}
	s.mu.Lock()
	if len(s.cache) > 100_000 {
		clear(s.cache)
	}
	if s.changes == seen {
		s.cache[h] = cached{rec: rec, err: err, at: time.Now()}
	}
	s.mu.Unlock()
	return rec, err
}

func (s *Store) get(ctx context.Context, hash string) (subjects.CounterAPIKey, error) {
	e, err := s.kv.Get(ctx, hash)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return subjects.CounterAPIKey{}, ErrUnknownKey
	}
	if err != nil {
		return subjects.CounterAPIKey{}, fmt.Errorf("look up api key: %w", err)
	}
	var rec subjects.CounterAPIKey
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, fmt.Errorf("api key record: %w", err)
	}
	if rec.Disabled {
		return rec, ErrUnknownKey
	}
	return rec, nil
}

// Tenants lists the tenants that have at least one key.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for k := range lister.Keys() {
		rec, err := s.get(ctx, k)
		if err != nil || seen[rec.Tenant] {
			continue
		}
		seen[rec.Tenant] = true
		out = append(out, rec.Tenant)
	}
	return out, nil
}

// TenantOf is the tenant id of tenant name created by user uid on the
// Counter page: "<uid>.<name>". The prefix is what ties a tenant, and its
// keys, to the person (OwnedBy, ForgetOwner); keys an operator issues from
// the command line belong to nobody.
func TenantOf(uid, name string) string { return uid + "." + name }

// OwnedKey is what a person's export shows of one of their keys: never the
// key, its hash or its prefix.
type OwnedKey struct {
	Tenant   string    `json:"tenant"` // the name the person gave it
	Name     string    `json:"name,omitempty"`
	Created  time.Time `json:"created"`
	Disabled bool      `json:"disabled,omitempty"`
}

// OwnedBy lists the keys of the tenants user uid created.
func (s *Store) OwnedBy(ctx context.Context, uid string) ([]OwnedKey, error) {
	out := []OwnedKey{}
	err := s.eachOwned(ctx, uid, func(_ string, rec subjects.CounterAPIKey, _ uint64) error {
		out = append(out, OwnedKey{Tenant: strings.TrimPrefix(rec.Tenant, TenantOf(uid, "")), Name: rec.Name, Created: rec.Created, Disabled: rec.Disabled})
		return nil
	})
	return out, err
}

// ForgetOwner disables, then deletes, every key of the tenants user uid
// created, and returns how many it removed: disabled first, so a key whose
// deletion fails stops working all the same. Running it again finds
// nothing left.
func (s *Store) ForgetOwner(ctx context.Context, uid string) (int, error) {
	n := 0
	err := s.eachOwned(ctx, uid, func(hash string, rec subjects.CounterAPIKey, rev uint64) error {
		if !rec.Disabled {
			rec.Disabled = true
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if _, err := s.kv.Update(ctx, hash, b, rev); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				return fmt.Errorf("disable api key of %s: %w", rec.Tenant, err)
			}
		}
		if err := s.kv.Purge(ctx, hash); err != nil {
			return fmt.Errorf("delete api key of %s: %w", rec.Tenant, err)
		}
		n++
		return nil
	})
	return n, err
}

// eachOwned calls f with every key record of a tenant of user uid. Keys
// are stored by hash, so this reads them all: a cost paid per GDPR request.
func (s *Store) eachOwned(ctx context.Context, uid string, f func(hash string, rec subjects.CounterAPIKey, rev uint64) error) error {
	if uid == "" {
		return errors.New("owner: empty user id")
	}
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	var hashes []string
	for k := range lister.Keys() {
		hashes = append(hashes, k)
	}
	for _, h := range hashes {
		e, err := s.kv.Get(ctx, h)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read api key: %w", err)
		}
		var rec subjects.CounterAPIKey
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			continue // not ours to judge here; Lookup refuses it
		}
		if !strings.HasPrefix(rec.Tenant, TenantOf(uid, "")) {
			continue
		}
		if err := f(h, rec, e.Revision()); err != nil {
			return err
		}
	}
	return nil
}
