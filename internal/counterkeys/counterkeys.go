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
}

type cached struct {
	rec subjects.CounterAPIKey
	err error
	at  time.Time
}

// Open opens the COUNTER_APIKEYS bucket. Lookups are cached for 30 s, so a
// disabled key stops working within that time.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, subjects.CounterAPIKeysBucket)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", subjects.CounterAPIKeysBucket, err)
	}
	return &Store{kv: kv, cache: map[string]cached{}, ttl: 30 * time.Second}, nil
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
	s.cache[h] = cached{rec: rec, err: err, at: time.Now()}
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
