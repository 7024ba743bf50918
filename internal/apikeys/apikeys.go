// Package apikeys issues and checks the API keys of the Counter (jfc_)
// and of the Enricher's HTTP ingest (jfe_), one Store per product bucket.
// A key is shown once when issued; the bucket stores only its SHA-256 with
// its Record, so a leaked bucket does not leak keys.
//
// The Counter's store also keeps an owner index: a key a person creates is
// indexed under subjects.CounterOwnerKey(uid, slot), one slot per key, at
// most MaxKeysPerUser, so their page, export and deletion read that user's
// slots with one filtered listing and never scan the bucket. The Enricher's
// keys carry their owner in the record (Record.UserID) instead, and its
// export and deletion scan the bucket.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/ids"
	"jetfleet/subjects"
)

// ErrUnknownKey is returned for a key that does not exist or is disabled.
var ErrUnknownKey = errors.New("unknown or disabled API key")

// Limits of the keys a person creates.
const (
	// MaxKeysPerUser is how many Counter keys one person may hold.
	MaxKeysPerUser = 20
	// MaxName is the longest tenant or key name, in characters.
	MaxName = 64
)

// ErrTooManyKeys is returned when a person already holds MaxKeysPerUser keys.
var ErrTooManyKeys = fmt.Errorf("you already have %d API keys, the most one account may hold", MaxKeysPerUser)

// Record is what a bucket stores of a key, under the key's SHA-256. The
// JSON is the one both products stored before they shared this package:
// the Counter writes tenant, name, prefix, rate and read limits; the
// Enricher name, rate limit and user. A field a product does not use stays
// empty, so omitempty keeps it out of that product's records.
type Record struct {
	// Tenant is the Counter tenant the key writes to.
	Tenant string `json:"tenant,omitempty"`
	// Name says who or what the key is for.
	Name string `json:"name,omitempty"`
	// Prefix is the first characters of a Counter key, to recognise it.
	Prefix string `json:"prefix,omitempty"`
	// RateLimit is events per second; 0 means the edge's default.
	RateLimit float64 `json:"rate_limit"`
	// ReadLimit is the Counter's reads per second; 0 means the default.
	ReadLimit float64   `json:"read_limit,omitempty"`
	Created   time.Time `json:"created"`
	Disabled  bool      `json:"disabled,omitempty"`
	// UserID is the account an Enricher key belongs to, if any (Counter
	// keys are found through the owner index instead).
	UserID string `json:"user,omitempty"`
}

// config is what differs between the products' stores.
type config struct {
	bucket string
	// prefix marks the product's keys so they are recognisable in configs
	// and to secret scanners.
	prefix string
	// indexed: keys have a tenant and a person's keys are indexed by owner
	// (the Counter); otherwise a key has a required name and its owner in
	// the record (the Enricher).
	indexed bool
}

// Store reads and writes the API key records of one product.
type Store struct {
	kv  jetstream.KeyValue
	cfg config

	mu    sync.Mutex
	cache map[string]cached // by hash
	ttl   time.Duration
	// changes counts the bucket changes seen by the watch; a lookup that
	// raced with one does not cache what it read.
	changes uint64
}

type cached struct {
	rec Record
	err error
	at  time.Time
}

// OpenCounter opens the Counter's COUNTER_APIKEYS bucket (jfc_ keys).
func OpenCounter(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	return open(ctx, js, config{bucket: subjects.CounterAPIKeysBucket, prefix: "jfc_", indexed: true})
}

// OpenEnricher opens the Enricher's ENRICHER_APIKEYS bucket (jfe_ keys).
func OpenEnricher(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	return open(ctx, js, config{bucket: subjects.EnricherKeysBucket, prefix: "jfe_"})
}

// open opens the bucket (subjects.Provision creates it). Lookups are cached
// for 30 s; a watch of the bucket, running until ctx ends, drops the cached
// entry of a key as soon as it is disabled or deleted on any process, so
// such a key stops working at once.
func open(ctx context.Context, js jetstream.JetStream, cfg config) (*Store, error) {
	kv, err := js.KeyValue(ctx, cfg.bucket)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.bucket, err)
	}
	// Only the keys that change matter here: MetaOnly keeps record
	// bodies off every edge's connection.
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", cfg.bucket, err)
	}
	s := &Store{kv: kv, cfg: cfg, cache: map[string]cached{}, ttl: 30 * time.Second}
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
	// operator's key): their export lists it and their deletion removes
	// it. A Counter key is indexed for them and counts towards
	// MaxKeysPerUser.
	Owner string
	// Tenant is the Counter's full tenant id (TenantOf(Owner, name) for a
	// person); the Enricher's keys have none.
	Tenant string
	// Name says who the key is for: optional on the Counter, required on
	// the Enricher.
	Name string
	// RateLimit is events per second, ReadLimit the Counter's reads per
	// second; 0 means the edge's default.
	RateLimit, ReadLimit float64
}

// Issue issues a new key. The returned key is the only copy. A person's
// Counter key takes a free slot of their index first (ErrTooManyKeys when
// none is left), then its record; if the record cannot be written the slot
// is given back, so a failure leaves no half-made key behind.
func (s *Store) Issue(ctx context.Context, k NewKey) (string, Record, error) {
	rec, err := s.newRecord(k)
	if err != nil {
		return "", Record{}, err
	}
	b := make([]byte, 24)
	rand.Read(b)
	key := s.cfg.prefix + base64.RawURLEncoding.EncodeToString(b)
	if s.cfg.indexed {
		rec.Prefix = key[:8]
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return "", rec, err
	}
	slot := ""
	if s.cfg.indexed && k.Owner != "" {
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

// newRecord checks k against the product's rules and returns its record,
// without the key's prefix.
func (s *Store) newRecord(k NewKey) (Record, error) {
	if k.RateLimit < 0 || k.ReadLimit < 0 {
		return Record{}, errors.New("rate limit: must not be negative")
	}
	if !s.cfg.indexed {
		name := strings.TrimSpace(k.Name)
		if name == "" {
			return Record{}, errors.New("name: required (who the key is for)")
		}
		return Record{Name: name, UserID: k.Owner, Created: time.Now().UTC(), RateLimit: k.RateLimit}, nil
	}
	tenant := strings.TrimSpace(k.Tenant)
	if tenant == "" || len(tenant) > subjects.CounterMaxVideoID || strings.ContainsAny(tenant, " \t\r\n") {
		return Record{}, fmt.Errorf("tenant: %q must be 1-%d characters without spaces", tenant, subjects.CounterMaxVideoID)
	}
	if err := ValidName("key name", k.Name, true); err != nil {
		return Record{}, err
	}
	return Record{Tenant: tenant, Name: k.Name, RateLimit: k.RateLimit, ReadLimit: k.ReadLimit, Created: time.Now().UTC()}, nil
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
func (s *Store) claimSlot(ctx context.Context, uid, hash string, rec Record) (string, error) {
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
func (s *Store) Lookup(ctx context.Context, key string) (Record, error) {
	if !strings.HasPrefix(key, s.cfg.prefix) || len(key) > 100 {
		return Record{}, ErrUnknownKey
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

func (s *Store) get(ctx context.Context, hash string) (Record, error) {
	e, err := s.kv.Get(ctx, hash)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, ErrUnknownKey
	}
	if err != nil {
		return Record{}, fmt.Errorf("look up api key: %w", err)
	}
	var rec Record
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

// Owned lists the Counter keys user uid created, from their index alone.
// The Enricher's store keeps no index; OwnedBy lists its keys.
func (s *Store) Owned(ctx context.Context, uid string) ([]Owned, error) {
	if !s.cfg.indexed {
		return nil, fmt.Errorf("%s has no owner index", s.cfg.bucket)
	}
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
	Tenant    string    `json:"tenant,omitempty"` // the Counter tenant name the person gave it
	Name      string    `json:"name,omitempty"`
	Created   time.Time `json:"created"`
	RateLimit float64   `json:"rate_limit"`
	Disabled  bool      `json:"disabled,omitempty"`
}

// OwnedBy lists the keys user uid owns.
func (s *Store) OwnedBy(ctx context.Context, uid string) ([]OwnedKey, error) {
	out := []OwnedKey{}
	err := s.eachOwned(ctx, uid, func(_, _ string, rec Record, _ uint64) error {
		tenant := ""
		if rec.Tenant != "" {
			tenant = strings.TrimPrefix(rec.Tenant, TenantOf(uid, ""))
		}
		out = append(out, OwnedKey{Tenant: tenant, Name: rec.Name, Created: rec.Created, RateLimit: rec.RateLimit, Disabled: rec.Disabled})
		return nil
	})
	return out, err
}

// ForgetOwner disables, then deletes, every key user uid owns, then its
// index slot, and returns how many it removed: disabled first, so a key
// whose deletion fails stops working all the same; the slot last, so a
// failed run is found again by the next. Running it again finds nothing
// left.
func (s *Store) ForgetOwner(ctx context.Context, uid string) (int, error) {
	n := 0
	err := s.eachOwned(ctx, uid, func(slot, hash string, rec Record, rev uint64) error {
		if rev != 0 {
			if !rec.Disabled {
				rec.Disabled = true
				b, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				if _, err := s.kv.Update(ctx, hash, b, rev); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
					return fmt.Errorf("disable api key %s: %w", rec.label(), err)
				}
			}
			if err := s.kv.Purge(ctx, hash); err != nil {
				return fmt.Errorf("delete api key %s: %w", rec.label(), err)
			}
			n++
		}
		if slot == "" {
			return nil
		}
		if err := s.kv.Purge(ctx, slot); err != nil {
			return fmt.Errorf("delete api key index of %s: %w", rec.label(), err)
		}
		return nil
	})
	return n, err
}

// label names a key in errors: its tenant, else its name.
func (r Record) label() string {
	if r.Tenant != "" {
		return r.Tenant
	}
	return strconv.Quote(r.Name)
}

// eachOwned calls f with every key of user uid and its record (rev 0 when
// the record is gone: a slot left by an interrupted deletion). Indexed
// keys are read from the owner's slots; otherwise every record is read,
// a cost paid per GDPR request, and slot is "".
func (s *Store) eachOwned(ctx context.Context, uid string, f func(slot, hash string, rec Record, rev uint64) error) error {
	if uid == "" {
		return errors.New("owner: empty user id")
	}
	if !s.cfg.indexed {
		return s.eachRecord(ctx, func(hash string, rec Record, rev uint64) error {
			if rec.UserID != uid {
				return nil
			}
			return f("", hash, rec, rev)
		})
	}
	return s.eachSlot(ctx, uid, func(slot string, ie indexEntry) error {
		e, err := s.kv.Get(ctx, ie.Hash)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return f(slot, ie.Hash, Record{Tenant: ie.Tenant, Name: ie.Name, Created: ie.Created}, 0)
		}
		if err != nil {
			return fmt.Errorf("read api key: %w", err)
		}
		var rec Record
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return fmt.Errorf("api key record of %s: %w", ie.Tenant, err)
		}
		return f(slot, ie.Hash, rec, e.Revision())
	})
}

// eachRecord calls f with every key record of the bucket (not the index
// slots), skipping records that do not decode. It reads the whole bucket:
// never on a request.
func (s *Store) eachRecord(ctx context.Context, f func(hash string, rec Record, rev uint64) error) error {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	var hashes []string
	for k := range lister.Keys() {
		if !strings.HasPrefix(k, subjects.CounterOwnerPrefix) {
			hashes = append(hashes, k)
		}
	}
	for _, h := range hashes {
		e, err := s.kv.Get(ctx, h)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read api key: %w", err)
		}
		var rec Record
		if json.Unmarshal(e.Value(), &rec) != nil {
			continue
		}
		if err := f(h, rec, e.Revision()); err != nil {
			return err
		}
	}
	return nil
}

// IndexOwners indexes the keys that people created before the owner index
// existed (records whose tenant is TenantOf a user id, without a slot) and
// returns how many it indexed. It reads the whole bucket, so it runs once
// per `jetfleet migrate`, never on a request; running it again indexes
// nothing. Such keys may take slots past MaxKeysPerUser: they are listed,
// exported and forgotten, and their owner creates no more until below it.
func (s *Store) IndexOwners(ctx context.Context) (int, error) {
	if !s.cfg.indexed {
		return 0, fmt.Errorf("%s has no owner index", s.cfg.bucket)
	}
	n := 0
	err := s.eachRecord(ctx, func(h string, rec Record, _ uint64) error {
		uid, _, ok := strings.Cut(rec.Tenant, ".")
		if !ok || !ids.Valid(uid) {
			return nil // an operator's key: nobody's
		}
		added, err := s.indexExisting(ctx, uid, h, rec)
		if added {
			n++
		}
		return err
	})
	return n, err
}

// indexExisting gives the existing key hash of uid a slot unless one names
// it already.
func (s *Store) indexExisting(ctx context.Context, uid, hash string, rec Record) (bool, error) {
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
