package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Outbox is the sender of development installs with no SMTP server: it keeps
// each mail in the OUTBOX KV bucket (subjects.OutboxBucket, which forgets
// mail after 24 hours) for a page to list, so a newcomer can open a magic
// link without setting up mail.
//
// A key is "<unix-nanos, 20 digits>.<mail id with characters KV keys do not
// allow replaced by _>", so keys sort by the time the mail was stored.
type Outbox struct {
	kv jetstream.KeyValue

	mu   sync.Mutex
	last int64 // nanos of the last key made, to keep keys strictly increasing
}

var _ Sender = (*Outbox)(nil)

// Entry is one mail in the outbox.
type Entry struct {
	Key    string    // for Get
	Stored time.Time // when the mail was stored
	Mail   subjects.Mail
}

// NewOutbox stores mail in kv, the bucket subjects.OutboxBucket.
func NewOutbox(kv jetstream.KeyValue) *Outbox {
	return &Outbox{kv: kv}
}

// Send stores m as JSON under a new key.
func (o *Outbox) Send(ctx context.Context, m subjects.Mail) error {
	if err := Validate(m); err != nil {
		return fmt.Errorf("outbox mail %q: %w", m.ID, err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("outbox mail %q: encode: %w", m.ID, err)
	}
	key := o.key(m.ID)
	if _, err := o.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("outbox mail %q: put %s: %w", m.ID, key, err)
	}
	return nil
}

// List returns up to limit mails, newest first; limit <= 0 returns all.
func (o *Outbox) List(ctx context.Context, limit int) ([]Entry, error) {
	lister, err := o.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox list: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("outbox list: %w", err)
	}
	slices.SortFunc(keys, func(a, b string) int { return strings.Compare(b, a) })

	n := len(keys)
	if limit > 0 {
		n = min(n, limit)
	}
	entries := make([]Entry, 0, n)
	for _, k := range keys {
		if len(entries) == n {
			break
		}
		e, err := o.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // expired or deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// Get returns the mail stored under key, or an error wrapping ErrNotFound
// when there is none (keys come from users' URLs, so a malformed one is
// simply not found).
func (o *Outbox) Get(ctx context.Context, key string) (Entry, error) {
	stored, ok := keyTime(key)
	if !ok {
		return Entry{}, fmt.Errorf("outbox get %q: %w", key, ErrNotFound)
	}
	kve, err := o.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Entry{}, fmt.Errorf("outbox get %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("outbox get %q: %w", key, err)
	}
	e := Entry{Key: key, Stored: stored}
	if err := json.Unmarshal(kve.Value(), &e.Mail); err != nil {
		return Entry{}, fmt.Errorf("outbox get %q: decode: %w", key, err)
	}
	return e, nil
}

const (
	keyNanosDigits = 20
	keyIDMax       = 100
)

// key makes the key for mail id stored now. Two mails stored in the same
// nanosecond get successive nanos, so the order of keys is the order of
// Send calls in this process.
func (o *Outbox) key(id string) string {
	o.mu.Lock()
	n := time.Now().UnixNano()
	if n <= o.last {
		n = o.last + 1
	}
	o.last = n
	o.mu.Unlock()
	return fmt.Sprintf("%0*d.%s", keyNanosDigits, n, sanitiseKeyToken(id))
}

// sanitiseKeyToken maps id to one KV key token: characters outside
// [-_=a-zA-Z0-9] become _ (a dot would start a new token, a slash reads as a
// path).
func sanitiseKeyToken(id string) string {
	b := []byte(id)
	if len(b) > keyIDMax {
		b = b[:keyIDMax]
	}
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '=':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// keyTime returns the time a key was made, and whether key has the form key
// makes.
func keyTime(key string) (time.Time, bool) {
	nanos, rest, ok := strings.Cut(key, ".")
	if !ok || len(nanos) != keyNanosDigits || rest == "" || strings.Contains(rest, ".") {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(nanos, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}
