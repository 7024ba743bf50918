// Package enricherkeys issues and checks the API keys of the Enricher's
// HTTP ingest. A key is shown once, when issued; the ENRICHER_APIKEYS
// bucket stores only its SHA-256, so a leaked bucket does not leak keys.
package enricherkeys

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
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// keyPrefix makes keys recognisable in configs and to secret scanners.
const keyPrefix = "jfe_"

// ErrUnknownKey is returned for a key that does not exist or is disabled.
var ErrUnknownKey = errors.New("unknown or disabled API key")

// Store reads and writes key records.
type Store struct{ kv jetstream.KeyValue }

// Open opens the ENRICHER_APIKEYS bucket (subjects.Provision creates it).
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, subjects.EnricherKeysBucket)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", subjects.EnricherKeysBucket, err)
	}
	return &Store{kv: kv}, nil
}

// Hash is the bucket key of an API key: hex SHA-256.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Issue creates a key for name allowed rateLimit events per second (0: the
// ingest's default) and returns it; it cannot be read back later.
func (s *Store) Issue(ctx context.Context, name string, rateLimit float64) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", errors.New("name: required (who the key is for)")
	}
	if rateLimit < 0 {
		return "", errors.New("rate limit: must not be negative")
	}
	b := make([]byte, 24)
	rand.Read(b)
	key := keyPrefix + base64.RawURLEncoding.EncodeToString(b)
	rec, err := json.Marshal(subjects.EnricherAPIKey{Name: name, Created: time.Now().UTC(), RateLimit: rateLimit})
	if err != nil {
		return "", err
	}
	if _, err := s.kv.Create(ctx, Hash(key), rec); err != nil {
		return "", fmt.Errorf("store key: %w", err)
	}
	return key, nil
}

// Lookup returns the record of key, or ErrUnknownKey.
func (s *Store) Lookup(ctx context.Context, key string) (subjects.EnricherAPIKey, error) {
	var rec subjects.EnricherAPIKey
	if !strings.HasPrefix(key, keyPrefix) {
		return rec, ErrUnknownKey
	}
	e, err := s.kv.Get(ctx, Hash(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, ErrUnknownKey
	}
	if err != nil {
		return rec, fmt.Errorf("look up key: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, fmt.Errorf("decode key record: %w", err)
	}
	if rec.Disabled {
		return rec, ErrUnknownKey
	}
	return rec, nil
}
