package crm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/ids"
	"jetfleet/internal/sealed"
	"jetfleet/subjects"
)

// CRMs an organiser can connect.
const (
	HubSpot    = subjects.EventsExportHubSpot
	Salesforce = subjects.EventsExportSalesforce
)

// Credentials keeps organisers' CRM credentials in subjects.EventsCRMBucket,
// each sealed with TOKEN_KEY and bound to its CRM and organiser, so the
// bucket never holds a usable token and a value copied to another
// organiser's key does not open. Nothing reads a credential back out to a
// page: only the export role opens them.
type Credentials struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	box *sealed.Box
	now func() time.Time
}

// OpenCredentials binds to the bucket (see subjects.Provision). Without
// box (TOKEN_KEY) it can only list and delete, as a GDPR deletion does.
func OpenCredentials(ctx context.Context, js jetstream.JetStream, box *sealed.Box) (*Credentials, error) {
	kv, err := js.KeyValue(ctx, subjects.EventsCRMBucket)
	if err != nil {
		return nil, fmt.Errorf("open CRM credentials bucket: %w", err)
	}
	return &Credentials{js: js, kv: kv, box: box, now: time.Now}, nil
}

var errNoKey = errors.New("CRM credentials: TOKEN_KEY is required to keep or use them")

// Connection describes a stored credential without its secret.
type Connection struct {
	CRM       string    `json:"crm"`
	Label     string    `json:"label,omitempty"` // e.g. the Salesforce instance; never the secret
	Connected time.Time `json:"connected"`
}

type record struct {
	Connection
	Sealed []byte `json:"sealed"`
}

func credKey(crm, uid string) string { return crm + "." + uid }

// SealContext is what a credential is bound to: its CRM and organiser.
func SealContext(crm, uid string) string { return "events-crm:" + crm + ":" + uid }

func validCRM(crm string) bool { return crm == HubSpot || crm == Salesforce }

// Put stores organiser uid's secret for crm, replacing any earlier one.
func (c *Credentials) Put(ctx context.Context, crm, uid string, secret []byte, label string) error {
	if !validCRM(crm) || !ids.Valid(uid) {
		return fmt.Errorf("store %s credentials of %q: invalid", crm, uid)
	}
	if c.box == nil {
		return errNoKey
	}
	rec := record{Connection: Connection{CRM: crm, Label: label, Connected: c.now().UTC()}, Sealed: c.box.Seal(secret, SealContext(crm, uid))}
	b, _ := json.Marshal(rec)
	if _, err := c.kv.Put(ctx, credKey(crm, uid), b); err != nil {
		return fmt.Errorf("store %s credentials: %w", crm, err)
	}
	return nil
}

// Secret opens organiser uid's secret for crm; ErrNotConnected when there
// is none.
func (c *Credentials) Secret(ctx context.Context, crm, uid string) ([]byte, error) {
	rec, err := c.get(ctx, crm, uid)
	if err != nil {
		return nil, err
	}
	if c.box == nil {
		return nil, errNoKey
	}
	p, err := c.box.Open(rec.Sealed, SealContext(crm, uid))
	if err != nil {
		return nil, fmt.Errorf("open %s credentials of %s: %w", crm, uid, err)
	}
	return p, nil
}

func (c *Credentials) get(ctx context.Context, crm, uid string) (record, error) {
	if !validCRM(crm) || !ids.Valid(uid) {
		return record{}, ErrNotConnected
	}
	e, err := c.kv.Get(ctx, credKey(crm, uid))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return record{}, ErrNotConnected
	}
	if err != nil {
		return record{}, fmt.Errorf("load %s credentials: %w", crm, err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return record{}, fmt.Errorf("decode %s credentials: %w", crm, err)
	}
	return rec, nil
}

// Connections lists what organiser uid has connected, by CRM.
func (c *Credentials) Connections(ctx context.Context, uid string) (map[string]Connection, error) {
	out := map[string]Connection{}
	for _, crm := range []string{HubSpot, Salesforce} {
		rec, err := c.get(ctx, crm, uid)
		if errors.Is(err, ErrNotConnected) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[crm] = rec.Connection
	}
	return out, nil
}

// Delete removes organiser uid's credentials for crm from the bucket's
// stream entirely: no revision, and no marker naming the organiser, stays.
func (c *Credentials) Delete(ctx context.Context, crm, uid string) error {
	if !validCRM(crm) || !ids.Valid(uid) {
		return nil
	}
	st, err := c.js.Stream(ctx, "KV_"+subjects.EventsCRMBucket)
	if err != nil {
		return fmt.Errorf("open stream of bucket %s: %w", subjects.EventsCRMBucket, err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(subjects.KVPutSubject(subjects.EventsCRMBucket, credKey(crm, uid)))); err != nil {
		return fmt.Errorf("delete %s credentials: %w", crm, err)
	}
	return nil
}

// OAuthTTL is how long a Salesforce connection may take between leaving
// for Salesforce and coming back.
const OAuthTTL = 10 * time.Minute

type pending struct {
	UserID   string `json:"user_id"`
	Verifier []byte `json:"verifier"` // sealed
}

func stateKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return "oauth." + hex.EncodeToString(sum[:16])
}

// BeginOAuth starts organiser uid's connection: a random state for the
// authorize URL and the PKCE verifier, kept (sealed, by the state's hash)
// for OAuthTTL.
func (c *Credentials) BeginOAuth(ctx context.Context, uid string) (state, verifier string, err error) {
	if c.box == nil {
		return "", "", errNoKey
	}
	state, verifier = ids.Token(24), ids.Token(48)
	b, _ := json.Marshal(pending{UserID: uid, Verifier: c.box.Seal([]byte(verifier), "events-crm-oauth:"+uid)})
	if _, err := c.kv.Create(ctx, stateKey(state), b, jetstream.KeyTTL(OAuthTTL)); err != nil {
		return "", "", fmt.Errorf("save oauth state: %w", err)
	}
	return state, verifier, nil
}

// ErrBadState is a callback whose state was not issued to this organiser,
// was used already, or expired.
var ErrBadState = errors.New("this connection link is not valid any more; start again from the integrations page")

// FinishOAuth takes back the verifier of state for organiser uid, once.
func (c *Credentials) FinishOAuth(ctx context.Context, uid, state string) (string, error) {
	if state == "" {
		return "", ErrBadState
	}
	k := stateKey(state)
	e, err := c.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", ErrBadState
	}
	if err != nil {
		return "", fmt.Errorf("load oauth state: %w", err)
	}
	// Single use: whoever deletes it first (by revision) finishes.
	if err := c.kv.Purge(ctx, k, jetstream.LastRevision(e.Revision())); err != nil {
		return "", ErrBadState
	}
	var p pending
	if json.Unmarshal(e.Value(), &p) != nil || p.UserID != uid {
		return "", ErrBadState
	}
	if c.box == nil {
		return "", errNoKey
	}
	v, err := c.box.Open(p.Verifier, "events-crm-oauth:"+uid)
	if err != nil {
		return "", ErrBadState
	}
	return string(v), nil
}

// Forget deletes every CRM credential of organiser uid (GDPR deletion).
func (c *Credentials) Forget(ctx context.Context, uid string) error {
	for _, crm := range []string{HubSpot, Salesforce} {
		if err := c.Delete(ctx, crm, uid); err != nil {
			return err
		}
	}
	return nil
}
