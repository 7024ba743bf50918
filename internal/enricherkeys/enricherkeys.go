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
	return s.IssueFor(ctx, "", name, rateLimit)
}

// IssueFor is Issue for a key that belongs to the account uid ("" for
// none): the person's GDPR export lists it and their deletion removes it.
func (s *Store) IssueFor(ctx context.Context, uid, name string, rateLimit float64) (string, error) {
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
	rec, err := json.Marshal(subjects.EnricherAPIKey{Name: name, UserID: uid, Created: time.Now().UTC(), RateLimit: rateLimit})
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

// OwnedKey is what a person's export shows of one of their keys: never the
// key or its hash.
type OwnedKey struct {
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	RateLimit float64   `json:"rate_limit"`
	Disabled  bool      `json:"disabled,omitempty"`
}

// OwnedBy lists the keys that belong to account uid.
func (s *Store) OwnedBy(ctx context.Context, uid string) ([]OwnedKey, error) {
	out := []OwnedKey{}
	err := s.eachOwned(ctx, uid, func(_ string, rec subjects.EnricherAPIKey, _ uint64) error {
		out = append(out, OwnedKey{Name: rec.Name, Created: rec.Created, RateLimit: rec.RateLimit, Disabled: rec.Disabled})
		return nil
	})
	return out, err
}

// ForgetOwner disables, then deletes, every key of account uid and returns
// how many it removed: disabled first, so a key whose deletion fails stops
// working all the same. Running it again finds nothing left.
func (s *Store) ForgetOwner(ctx context.Context, uid string) (int, error) {
	n := 0
	err := s.eachOwned(ctx, uid, func(hash string, rec subjects.EnricherAPIKey, rev uint64) error {
		if !rec.Disabled {
			rec.Disabled = true
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if _, err := s.kv.Update(ctx, hash, b, rev); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				return fmt.Errorf("disable key %q: %w", rec.Name, err)
			}
		}
		if err := s.kv.Purge(ctx, hash); err != nil {
			return fmt.Errorf("delete key %q: %w", rec.Name, err)
		}
		n++
		return nil
	})
	return n, err
}

// eachOwned calls f with every key record of account uid. Keys are stored
// by hash, so this reads them all: a cost paid per GDPR request.
func (s *Store) eachOwned(ctx context.Context, uid string, f func(hash string, rec subjects.EnricherAPIKey, rev uint64) error) error {
	if uid == "" {
		return errors.New("owner: empty user id")
	}
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
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
			return fmt.Errorf("read key: %w", err)
		}
		var rec subjects.EnricherAPIKey
		if json.Unmarshal(e.Value(), &rec) != nil || rec.UserID != uid {
			continue
		}
		if err := f(h, rec, e.Revision()); err != nil {
			return err
		}
	}
	return nil
}
