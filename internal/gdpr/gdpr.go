// Package gdpr keeps people's GDPR requests (seed 001, "GDPR Points"): a
// signed-in person asks for a copy of their data or for its deletion; the
// request waits in the GDPR_REQUESTS bucket until they confirm it through a
// magic link mailed to them, and is then queued on the GDPR work queue for
// the gdpr worker role (workers/gdpr), which marks it done.
//
// The magic link proves control of the mailbox; the request's nonce, which
// only that link carries, proves the confirmation came from the mail and not
// merely from a browser that is signed in.
package gdpr

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/ids"
	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// Errors callers tell apart.
var (
	ErrNotFound = errors.New("no such request")
	ErrBadKind  = errors.New("unknown kind of request")
)

// Status of a request.
type Status string

// Request statuses.
const (
	Awaiting Status = "awaiting_confirmation"
	Queued   Status = "queued"
	Done     Status = "done"
)

// Request is one person's request.
type Request struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"` // subjects.GDPRKindExport or GDPRKindDelete
	UserID    string    `json:"user_id"`
	Email     string    `json:"email,omitempty"` // cleared once a deletion is done
	NonceHash string    `json:"nonce_hash"`
	Status    Status    `json:"status"`
	Created   time.Time `json:"created"`
	Confirmed time.Time `json:"confirmed,omitzero"`
	Done      time.Time `json:"done,omitzero"`
	// Notes say what the request could not do outside our systems (a
	// grant that could not be revoked at Google), for operators
	// (`nats kv get GDPR_REQUESTS req.<id>`) and the confirmation mail.
	Notes []string `json:"notes,omitempty"`
}

// Requests stores requests and queues confirmed ones.
type Requests struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	now func() time.Time
}

// Open binds to the bucket declared in subjects (see subjects.Provision).
func Open(ctx context.Context, js jetstream.JetStream, now func() time.Time) (*Requests, error) {
	kv, err := js.KeyValue(ctx, subjects.GDPRRequestsBucket)
	if err != nil {
		return nil, fmt.Errorf("open GDPR requests bucket: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Requests{js: js, kv: kv, now: now}, nil
}

func key(id string) string { return "req." + id }

func hash(nonce string) string {
	sum := sha256.Sum256([]byte(nonce))
	return hex.EncodeToString(sum[:])
}

// Create records a request of kind by the signed-in user and returns it
// with its nonce, which goes only into the confirmation link.
func (q *Requests) Create(ctx context.Context, kind, userID, email string) (Request, string, error) {
	if kind != subjects.GDPRKindExport && kind != subjects.GDPRKindDelete {
		return Request{}, "", ErrBadKind
	}
	nonce := ids.Token(24)
	r := Request{ID: ids.New(), Kind: kind, UserID: userID, Email: email, NonceHash: hash(nonce), Status: Awaiting, Created: q.now().UTC()}
	b, _ := json.Marshal(r)
	if _, err := q.kv.Create(ctx, key(r.ID), b); err != nil {
		return Request{}, "", fmt.Errorf("save GDPR request: %w", err)
	}
	return r, nonce, nil
}

// For returns request id to the user who made it when nonce is its nonce;
// anything else is ErrNotFound.
func (q *Requests) For(ctx context.Context, id, userID, nonce string) (Request, error) {
	r, _, err := q.getFor(ctx, id, userID, nonce)
	return r, err
}

// getFor is get for the user holding the request's nonce, ErrNotFound for
// anyone else.
func (q *Requests) getFor(ctx context.Context, id, userID, nonce string) (Request, uint64, error) {
	r, rev, err := q.get(ctx, id)
	if err != nil {
		return Request{}, 0, err
	}
	if r.UserID != userID || subtle.ConstantTimeCompare([]byte(r.NonceHash), []byte(hash(nonce))) != 1 {
		return Request{}, 0, ErrNotFound
	}
	return r, rev, nil
}

func (q *Requests) get(ctx context.Context, id string) (Request, uint64, error) {
	if !ids.Valid(id) {
		return Request{}, 0, ErrNotFound
	}
	e, err := q.kv.Get(ctx, key(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Request{}, 0, ErrNotFound
	}
	if err != nil {
		return Request{}, 0, fmt.Errorf("load GDPR request %s: %w", id, err)
	}
	var r Request
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Request{}, 0, fmt.Errorf("decode GDPR request %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// Confirm queues request id for the gdpr role, once: the publish carries
// the request id as its Nats-Msg-Id, and a confirmation repeated while the
// request is queued publishes again (deduplicated) in case the first
// publish was not acknowledged. A done request is left alone.
func (q *Requests) Confirm(ctx context.Context, id, userID, nonce string) (Request, error) {
	for {
		r, rev, err := q.getFor(ctx, id, userID, nonce)
		if err != nil {
			return Request{}, err
		}
		switch r.Status {
		case Done:
			return r, nil
		case Queued:
			return r, q.enqueue(ctx, r)
		}
		r.Status, r.Confirmed = Queued, q.now().UTC()
		b, _ := json.Marshal(r)
		if _, err := q.kv.Update(ctx, key(id), b, rev); kvjson.Conflict(err) {
			continue
		} else if err != nil {
			return Request{}, fmt.Errorf("save GDPR request %s: %w", id, err)
		}
		return r, q.enqueue(ctx, r)
	}
}

func (q *Requests) enqueue(ctx context.Context, r Request) error {
	b, _ := json.Marshal(subjects.GDPRRequest{ID: r.ID, Kind: r.Kind, UserID: r.UserID, Email: r.Email, At: r.Confirmed})
	if _, err := q.js.Publish(ctx, subjects.GDPRSubject(r.Kind), b, jetstream.WithMsgID("gdpr:"+r.ID)); err != nil {
		return fmt.Errorf("queue GDPR request %s: %w", r.ID, err)
	}
	return nil
}

// MarkDone records that the gdpr role finished request id; for a deletion
// the address is removed from the record too. A request that expired from
// the bucket meanwhile is not an error.
func (q *Requests) MarkDone(ctx context.Context, id string) error {
	return q.change(ctx, id, func(r *Request) bool {
		if r.Status == Done {
			return false
		}
		r.Status, r.Done = Done, q.now().UTC()
		if r.Kind == subjects.GDPRKindDelete {
			r.Email = ""
		}
		return true
	})
}

// AddNote records note on request id, once however often it is added (a
// redelivered request adds the same note again). A request that expired
// from the bucket meanwhile is not an error.
func (q *Requests) AddNote(ctx context.Context, id, note string) error {
	return q.change(ctx, id, func(r *Request) bool {
		if slices.Contains(r.Notes, note) {
			return false
		}
		r.Notes = append(r.Notes, note)
		return true
	})
}

// change saves request id as f changes it (f reports whether it did),
// with compare-and-set against concurrent changes. A request gone from
// the bucket is left gone.
func (q *Requests) change(ctx context.Context, id string, f func(*Request) bool) error {
	for {
		r, rev, err := q.get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !f(&r) {
			return nil
		}
		b, _ := json.Marshal(r)
		if _, err := q.kv.Update(ctx, key(id), b, rev); kvjson.Conflict(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("save GDPR request %s: %w", id, err)
		}
		return nil
	}
}

// Notes returns the notes recorded on request id (none for a request gone
// from the bucket).
func (q *Requests) Notes(ctx context.Context, id string) ([]string, error) {
	r, _, err := q.get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return r.Notes, err
}

// ScheduleExportExpiry publishes the one-shot schedule (@at at) that fires
// subjects.GDPRExportExpire for the gdpr-exports role, which then deletes
// the blob key: how every download mailed as a link (a person's data
// export, an event's participant CSV) disappears when its link stops
// working. The stream keeps one message per subject and the publish is
// deduplicated by id, so a redelivered job schedules nothing twice.
func ScheduleExportExpiry(ctx context.Context, js jetstream.JetStream, id, key string, at time.Time) error {
	if !ExpirableKey(key, id) {
		return fmt.Errorf("schedule deletion of %q: not an export", key)
	}
	b, _ := json.Marshal(subjects.GDPRExportExpiry{RequestID: id, Key: key, At: at.UTC()})
	_, err := js.Publish(ctx, subjects.GDPRExportSchedule(id), b,
		jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(subjects.GDPRExportExpire(id)),
		jetstream.WithMsgID("gdpr-expiry:"+id))
	if err != nil {
		return fmt.Errorf("schedule deletion of export %s: %w", key, err)
	}
	return nil
}

// MailedCSVKey is where run rid's participant CSV of event eid, mailed as a
// link to account uid, is stored: under the person it was mailed to, so
// that deleting their data deletes every such file at once (see
// MailedPrefixes) and the links stop working.
func MailedCSVKey(uid, eid, rid string) string {
	return "exports/people/" + uid + "/events/" + eid + "/" + rid + ".csv"
}

// MailedPrefixes are the blob prefixes of everything mailed as a link to
// account uid (their GDPR exports, participant CSVs they asked for), which
// a deletion of their data deletes.
func MailedPrefixes(uid string) []string {
	return []string{"gdpr/" + uid + "/", "exports/people/" + uid + "/"}
}

// ExpirableKey reports whether key names an export made under id that an
// expiry may delete: a GDPR export (gdpr/<user>/<id>.json) or an event's
// participant CSV (MailedCSVKey, or exports/events/<event>/<id>.csv as
// they were stored before they were filed under the person). Anything
// else is refused, so a malformed schedule cannot delete other blobs.
func ExpirableKey(key, id string) bool {
	if !ids.Valid(id) {
		return false
	}
	parts := strings.Split(key, "/")
	switch {
	case len(parts) == 3 && parts[0] == "gdpr" && parts[2] == id+".json":
		return parts[1] != ""
	case len(parts) == 6 && parts[0] == "exports" && parts[1] == "people" && parts[3] == "events" && parts[5] == id+".csv":
		return ValidUserID(parts[2]) && ids.Valid(parts[4])
	case len(parts) == 4 && parts[0] == "exports" && parts[1] == "events" && parts[3] == id+".csv":
		return ids.Valid(parts[2])
	}
	return false
}

// ValidUserID reports whether uid can be part of a subject or blob key:
// not empty, and none of the separators and wildcards those use.
func ValidUserID(uid string) bool {
	return uid != "" && !strings.ContainsAny(uid, "./*> ")
}
