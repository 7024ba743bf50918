// Package gdpr is the gdpr worker role: it works through confirmed GDPR
// requests on the GDPR queue (subjects.GDPRStream). An export gathers what
// jetfleet keeps about the person — their account, their event
// registrations with the consent each records, their organiser profile and
// events — into a JSON document in the blob store and mails them a link
// valid for seven days. A deletion pseudonymises their registrations,
// deletes their account and email index, ends their sessions and mails a
// confirmation. Both are idempotent: a redelivered request redoes the same
// work harmlessly, and the mail is deduplicated by its id.
package gdpr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/blob"
	"jetfleet/internal/events"
	"jetfleet/internal/gdpr"
	"jetfleet/internal/ids"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// LinkValidity is how long the link to an export works (S3's presign limit).
const LinkValidity = 7 * 24 * time.Hour

// Deps are what the role uses.
type Deps struct {
	JS       jetstream.JetStream
	Accounts *accounts.Store
	Events   *events.Service
	Requests *gdpr.Requests
	Blobs    blob.Store
	Mail     events.Mailer
	Log      *slog.Logger
	Now      func() time.Time
}

// Worker handles GDPR requests.
type Worker struct{ d Deps }

// New returns the role.
func New(d Deps) *Worker {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Worker{d: d}
}

// Export is the document a person receives.
type Export struct {
	Generated time.Time           `json:"generated"`
	RequestID string              `json:"request_id"`
	Account   accounts.User       `json:"account"`
	Events    events.PersonalData `json:"events"`
	// NotKept names what the seed lists but this version does not store,
	// so the reader knows it was not forgotten.
	NotKept []string `json:"not_kept"`
}

// ExportKey is where request rid's export of user uid is stored.
func ExportKey(uid, rid string) string { return "gdpr/" + uid + "/" + rid + ".json" }

// Handle runs one request.
func (w *Worker) Handle(ctx context.Context, msg jetstream.Msg) error {
	var req subjects.GDPRRequest
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		return consume.Permanentf("decode GDPR request: %v", err)
	}
	if !ids.Valid(req.ID) || req.UserID == "" || strings.ContainsAny(req.UserID, "./*> ") {
		return consume.Permanentf("GDPR request without a valid id or user")
	}
	var err error
	switch {
	case msg.Subject() == subjects.GDPRExport && req.Kind == subjects.GDPRKindExport:
		err = w.export(ctx, req)
	case msg.Subject() == subjects.GDPRDelete && req.Kind == subjects.GDPRKindDelete:
		err = w.delete(ctx, req)
	default:
		return consume.Permanentf("GDPR request %s of kind %q on %s", req.ID, req.Kind, msg.Subject())
	}
	if err != nil {
		return err
	}
	return w.d.Requests.MarkDone(ctx, req.ID)
}

func (w *Worker) export(ctx context.Context, req subjects.GDPRRequest) error {
	u, err := w.d.Accounts.User(ctx, req.UserID)
	if errors.Is(err, accounts.ErrNotFound) {
		// Deleted since (a deletion confirmed right after): nothing to send.
		w.d.Log.Info("GDPR export of a deleted account skipped", "request", req.ID)
		return nil
	}
	if err != nil {
		return err
	}
	data, err := w.d.Events.PersonalDataOf(ctx, u.ID, u.Email)
	if err != nil {
		return err
	}
	doc := Export{
		Generated: w.d.Now().UTC(), RequestID: req.ID, Account: u, Events: data,
		NotKept: []string{"chat messages", "team submissions", "engagement analytics"},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return consume.Permanent(fmt.Errorf("encode export: %w", err))
	}
	k := ExportKey(u.ID, req.ID)
	if err := w.d.Blobs.Put(ctx, k, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
		return fmt.Errorf("store export %s: %w", k, err)
	}
	link, err := w.d.Blobs.URL(ctx, k, LinkValidity)
	if err != nil {
		return fmt.Errorf("link to export %s: %w", k, err)
	}
	w.d.Log.Info("GDPR export stored", "request", req.ID, "registrations", len(data.Registrations), "events", len(data.OrganisedEvents))
	return w.d.Mail(ctx, subjects.Mail{
		ID: "gdpr-export:" + req.ID, To: u.Email, Subject: "Your jetfleet data",
		Text: "Hello,\n\nAs you asked, here is a copy of the data jetfleet keeps about you (a JSON document):\n\n" + link +
			"\n\nThe link works for 7 days. If you did not ask for this, tell us by replying to this mail.\n",
	})
}

func (w *Worker) delete(ctx context.Context, req subjects.GDPRRequest) error {
	email := req.Email
	if u, err := w.d.Accounts.User(ctx, req.UserID); err == nil {
		email = u.Email // the account's address is the one its data is under
	} else if !errors.Is(err, accounts.ErrNotFound) {
		return err
	}
	n, err := w.d.Events.ForgetPerson(ctx, req.UserID, email)
	if err != nil {
		return err
	}
	if err := w.d.Accounts.Delete(ctx, req.UserID); err != nil {
		return err
	}
	ended, err := endSessions(ctx, w.d.JS, req.UserID)
	if err != nil {
		return err
	}
	w.d.Log.Info("GDPR deletion done", "request", req.ID, "registrations", n, "sessions", ended)
	if email == "" {
		return nil
	}
	return w.d.Mail(ctx, subjects.Mail{
		ID: "gdpr-delete:" + req.ID, To: email, Subject: "Your jetfleet account and data are deleted",
		Text: "Hello,\n\nAs you asked, your jetfleet account is deleted and you are signed out everywhere.\n" +
			"Your event registrations now show a pseudonym instead of your name and address; organisers keep only that " +
			"the seat was taken. This is the last mail we send you.\n",
	})
}

// sessionOwner is the part of a SESSIONS value (web/session's record) that
// names its user. Workers do not import web, so the field is read here by
// its JSON name.
type sessionOwner struct {
	UserID string `json:"user_id"`
}

// endSessions purges every session of user uid. Sessions are keyed by
// the hash of their random id, so this reads them all, in one watch of the bucket's
// current values: a cost paid once per deletion.
func endSessions(ctx context.Context, js jetstream.JetStream, uid string) (int, error) {
	kv, err := js.KeyValue(ctx, subjects.SessionsBucket)
	if err != nil {
		return 0, fmt.Errorf("open sessions: %w", err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, fmt.Errorf("read sessions: %w", err)
	}
	defer w.Stop()
	var mine []string
read:
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				break read // every current value seen
			}
			var o sessionOwner
			if json.Unmarshal(e.Value(), &o) == nil && o.UserID == uid {
				mine = append(mine, e.Key())
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("read sessions: %w", ctx.Err())
		}
	}
	for i, k := range mine {
		if err := kv.Purge(ctx, k); err != nil {
			return i, fmt.Errorf("end session: %w", err)
		}
	}
	return len(mine), nil
}
