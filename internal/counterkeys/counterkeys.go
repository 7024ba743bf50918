// Package counterkeys issues and checks Counter API keys. A key is shown
// once when created; the COUNTER_APIKEYS bucket stores only its SHA-256 with
// the tenant it belongs to, so a leaked bucket does not leak keys.
//
// A key a person creates on the Counter page is also indexed under
// subjects.CounterOwnerKey(uid, slot), one slot per key, at most
// MaxKeysPerUser: their page, export and deletion read that user's slots
// with one filtered listing and never scan the bucket, so another user's
// keys cost them nothing.
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
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/ids"
	"jetfleet/subjects"
)

// keyPrefix marks jetfleet counter keys so they are recognisable in configs
// and secret scanners.
const keyPrefix = "jfc_"

// ErrUnknownKey is returned for a key that does not exist or is disabled.
var ErrUnknownKey = errors.New("unknown or disabled API key")

// Limits of the keys a person creates.
const (
	// MaxKeysPerUser is how many keys one person may hold.
	MaxKeysPerUser = 20
	// MaxName is the longest tenant or key name, in characters.
	MaxName = 64
)

// ErrTooManyKeys is returned when a person already holds MaxKeysPerUser keys.
var ErrTooManyKeys = fmt.Errorf("you already have %d API keys, the most one account may hold", MaxKeysPerUser)

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
	// Only the keys that change matter here: MetaOnly keeps record
	// bodies off every edge's connection.
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
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

// NewKey describes a key to issue.
type NewKey struct {
	// Owner is the id of the person the key belongs to ("" for an
	// operator's key): the key is indexed for them and counts towards
	// MaxKeysPerUser.
	Owner string
	// Tenant is the full tenant id (TenantOf(Owner, name) for a person).
	Tenant string
	Name   string
	// RateLimit is events per second, ReadLimit reads per second; 0 means
	// the edge's default.
	RateLimit, ReadLimit float64
}

// Create issues a new operator key for tenant. The returned key is the only copy.
func (s *Store) Create(ctx context.Context, tenant, name string, rateLimit float64) (string, subjects.CounterAPIKey, error) {
	return s.Issue(ctx, NewKey{Tenant: tenant, Name: name, RateLimit: rateLimit})
}

// Issue issues a new key. The returned key is the only copy. A person's
// key takes a free slot of their index first (ErrTooManyKeys when none is
// left), then its record; if the record cannot be written the slot is
// given back, so a failure leaves no half-made key behind.
func (s *Store) Issue(ctx context.Context, k NewKey) (string, subjects.CounterAPIKey, error) {
	tenant := strings.TrimSpace(k.Tenant)
	if tenant == "" || len(tenant) > subjects.CounterMaxVideoID || strings.ContainsAny(tenant, " \t\r\n") {
		return "", subjects.CounterAPIKey{}, fmt.Errorf("tenant: %q must be 1-%d characters without spaces", tenant, subjects.CounterMaxVideoID)
	}
	if err := ValidName("key name", k.Name, true); err != nil {
		return "", subjects.CounterAPIKey{}, err
	}
	if k.RateLimit < 0 || k.ReadLimit < 0 {
		return "", subjects.CounterAPIKey{}, errors.New("rate limit: must not be negative")
	}
	b := make([]byte, 24)
	rand.Read(b)
	key := keyPrefix + base64.RawURLEncoding.EncodeToString(b)
	rec := subjects.CounterAPIKey{Tenant: tenant, Name: k.Name, Prefix: key[:8], RateLimit: k.RateLimit, ReadLimit: k.ReadLimit, Created: time.Now().UTC()}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", rec, err
	}
	slot := ""
	if k.Owner != "" {
		if slot, err = s.claimSlot(ctx, k.Owner, Hash(key), rec); err != nil {
			return "", rec, err
		}
	}
	if _, err := s.kv.Create(ctx, Hash(key), data); err != nil {
		if slot != "" {
			if perr := s.kv.Purge(ctx, slot); perr != nil {
				err = errors.Join(err, fmt.Errorf("give back index slot: %w", perr))
			}
		}
		return "", rec, fmt.Errorf("store api key: %w", err)
	}
	return key, rec, nil
}

// ValidName reports why s cannot be a tenant or key name: longer than
// MaxName characters, or holding anything but printable characters.
// Empty is allowed only when optional.
func ValidName(what, s string, optional bool) error {
	switch {
	case s == "" && optional:
		return nil
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("%s: required", what)
	case utf8.RuneCountInString(s) > MaxName:
		return fmt.Errorf("%s: %d characters, at most %d", what, utf8.RuneCountInString(s), MaxName)
	case !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("%s: only printable characters (no tabs, line breaks or control characters)", what)
	}
	return nil
}

// validOwner reports whether uid can be one token of an index key: KV key
// characters without the '.' that separates tokens.
func validOwner(uid string) bool {
	if uid == "" || len(uid) > 64 {
		return false
	}
	for _, c := range uid {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}

// indexEntry is the value of an owner's index slot: enough to list the
// key without reading its record.
type indexEntry struct {
	Hash    string    `json:"hash"`
	Tenant  string    `json:"tenant"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
}

// claimSlot writes the index entry of a new key of uid into the first free
// slot and returns the slot's key. Slots are created with KV Create, so two
// concurrent creations never share one and the cap holds exactly.
func (s *Store) claimSlot(ctx context.Context, uid, hash string, rec subjects.CounterAPIKey) (string, error) {
	taken := map[string]bool{}
	if err := s.eachSlot(ctx, uid, func(slot string, _ indexEntry) error { taken[slot] = true; return nil }); err != nil {
		return "", err
	}
	data, err := json.Marshal(indexEntry{Hash: hash, Tenant: rec.Tenant, Name: rec.Name, Created: rec.Created})
	if err != nil {
		return "", err
	}
	for i := range MaxKeysPerUser {
		slot := subjects.CounterOwnerKey(uid, i)
		if taken[slot] {
			continue
		}
		_, err := s.kv.Create(ctx, slot, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // taken meanwhile by a concurrent creation
		}
		if err != nil {
			return "", fmt.Errorf("index api key: %w", err)
		}
		return slot, nil
	}
	return "", ErrTooManyKeys
}

// eachSlot calls f with every index slot of uid: one filtered listing of
// the bucket, whatever other users hold.
func (s *Store) eachSlot(ctx context.Context, uid string, f func(slot string, e indexEntry) error) error {
	if !validOwner(uid) {
		return fmt.Errorf("owner: %q is not a user id", uid)
	}
	w, err := s.kv.WatchFiltered(ctx, []string{subjects.CounterOwnerKeys(uid)}, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("list api keys of the owner: %w", err)
	}
	defer w.Stop()
	var entries []jetstream.KeyValueEntry
	for e := range w.Updates() {
		if e == nil {
			break // the initial values are all delivered
		}
		entries = append(entries, e)
	}
	for _, e := range entries {
		var ie indexEntry
		if err := json.Unmarshal(e.Value(), &ie); err != nil {
			return fmt.Errorf("api key index %s: %w", e.Key(), err)
		}
		if err := f(e.Key(), ie); err != nil {
			return err
		}
	}
	return nil
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

// TenantOf is the tenant id of tenant name created by user uid on the
// Counter page: "<uid>.<name>". Keys an operator issues from the command
// line belong to nobody.
func TenantOf(uid, name string) string { return uid + "." + name }

// Owned is one of a person's keys as their page lists it.
type Owned struct {
	Tenant  string // the name the person gave it, without the owner prefix
	Name    string
	Created time.Time
}

// Owned lists the keys user uid created, from their index alone.
func (s *Store) Owned(ctx context.Context, uid string) ([]Owned, error) {
	var out []Owned
	err := s.eachSlot(ctx, uid, func(_ string, e indexEntry) error {
		out = append(out, Owned{Tenant: strings.TrimPrefix(e.Tenant, TenantOf(uid, "")), Name: e.Name, Created: e.Created})
		return nil
	})
	return out, err
}

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
	err := s.eachOwned(ctx, uid, func(_, _ string, rec subjects.CounterAPIKey, _ uint64) error {
		out = append(out, OwnedKey{Tenant: strings.TrimPrefix(rec.Tenant, TenantOf(uid, "")), Name: rec.Name, Created: rec.Created, Disabled: rec.Disabled})
		return nil
	})
	return out, err
}

// ForgetOwner disables, then deletes, every key of the tenants user uid
// created, then its index slot, and returns how many it removed: disabled
// first, so a key whose deletion fails stops working all the same; the
// slot last, so a failed run is found again by the next. Running it again
// finds nothing left.
func (s *Store) ForgetOwner(ctx context.Context, uid string) (int, error) {
	n := 0
	err := s.eachOwned(ctx, uid, func(slot, hash string, rec subjects.CounterAPIKey, rev uint64) error {
		if rev != 0 {
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
		}
		if err := s.kv.Purge(ctx, slot); err != nil {
			return fmt.Errorf("delete api key index of %s: %w", rec.Tenant, err)
		}
		return nil
	})
	return n, err
}

// eachOwned calls f with every indexed key of user uid and its record (rev
// 0 when the record is gone: a slot left by an interrupted deletion).
func (s *Store) eachOwned(ctx context.Context, uid string, f func(slot, hash string, rec subjects.CounterAPIKey, rev uint64) error) error {
	if uid == "" {
		return errors.New("owner: empty user id")
	}
	return s.eachSlot(ctx, uid, func(slot string, ie indexEntry) error {
		e, err := s.kv.Get(ctx, ie.Hash)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return f(slot, ie.Hash, subjects.CounterAPIKey{Tenant: ie.Tenant, Name: ie.Name, Created: ie.Created}, 0)
		}
		if err != nil {
			return fmt.Errorf("read api key: %w", err)
		}
		var rec subjects.CounterAPIKey
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return fmt.Errorf("api key record of %s: %w", ie.Tenant, err)
		}
		return f(slot, ie.Hash, rec, e.Revision())
	})
}

// IndexOwners indexes the keys that people created before the owner index
// existed (records whose tenant is TenantOf a user id, without a slot) and
// returns how many it indexed. It reads the whole bucket, so it runs once
// per `jetfleet migrate`, never on a request; running it again indexes
// nothing. Such keys may take slots past MaxKeysPerUser: they are listed,
// exported and forgotten, and their owner creates no more until below it.
func (s *Store) IndexOwners(ctx context.Context) (int, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("list api keys: %w", err)
	}
	var hashes []string
	for k := range lister.Keys() {
		if !strings.HasPrefix(k, subjects.CounterOwnerPrefix) {
			hashes = append(hashes, k)
		}
	}
	n := 0
	for _, h := range hashes {
		e, err := s.kv.Get(ctx, h)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("read api key: %w", err)
		}
		var rec subjects.CounterAPIKey
		if json.Unmarshal(e.Value(), &rec) != nil {
			continue
		}
		uid, _, ok := strings.Cut(rec.Tenant, ".")
		if !ok || !ids.Valid(uid) {
			continue // an operator's key: nobody's
		}
		added, err := s.indexExisting(ctx, uid, h, rec)
		if err != nil {
			return n, err
		}
		if added {
			n++
		}
	}
	return n, nil
}

// indexExisting gives the existing key hash of uid a slot unless one names
// it already.
func (s *Store) indexExisting(ctx context.Context, uid, hash string, rec subjects.CounterAPIKey) (bool, error) {
	taken := map[string]bool{}
	err := s.eachSlot(ctx, uid, func(slot string, e indexEntry) error {
		taken[slot] = true
		if e.Hash == hash {
			taken[""] = true // already indexed
		}
		return nil
	})
	if err != nil || taken[""] {
		return false, err
	}
	data, err := json.Marshal(indexEntry{Hash: hash, Tenant: rec.Tenant, Name: rec.Name, Created: rec.Created})
	if err != nil {
		return false, err
	}
	for i := 0; ; i++ {
		slot := subjects.CounterOwnerKey(uid, i)
		if taken[slot] {
			continue
		}
		_, err := s.kv.Create(ctx, slot, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("index api key of %s: %w", rec.Tenant, err)
		}
		return true, nil
	}
}
