// Package gdpr holds the gdpr worker roles. The gdpr role works through
// confirmed GDPR requests on the GDPR queue (subjects.GDPRStream), walking
// the personal-data registry (internal/personaldata) so that every product
// is covered. An export gathers the person's account and each product's
// data into a JSON document in the blob store, mails them a link valid for
// seven days and schedules the document's deletion for when the link
// expires. A deletion has each product forget the person, deletes their
// earlier exports, their account and email index, ends their sessions and
// mails a confirmation. Both are idempotent: a redelivered request redoes
// the same work harmlessly, and the mail is deduplicated by its id. The
// gdpr-exports role (HandleExpiry) deletes exports when their schedule
// fires.
package gdpr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/blob"
	"jetfleet/internal/events"
	"jetfleet/internal/gdpr"
	"jetfleet/internal/ids"
	"jetfleet/internal/personaldata"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// LinkValidity is how long the link to an export works (S3's presign limit).
const LinkValidity = 7 * 24 * time.Hour

// Deps are what the role uses.
type Deps struct {
	JS       jetstream.JetStream
	Accounts *accounts.Store
	// Registry is every product's personal data (personaldata.Registry).
	Registry []personaldata.Entry
	Requests *gdpr.Requests
	Blobs    blob.Store
	Mail     events.Mailer
	Log      *slog.Logger
	Now      func() time.Time
	// ExportTTL is how long an export is kept, and its link works;
	// default LinkValidity.
	ExportTTL time.Duration
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
	if d.ExportTTL <= 0 || d.ExportTTL > LinkValidity {
		d.ExportTTL = LinkValidity
	}
	return &Worker{d: d}
}

// Export is the document a person receives.
type Export struct {
	Generated time.Time     `json:"generated"`
	RequestID string        `json:"request_id"`
	Account   accounts.User `json:"account"`
	// Products holds each product's data about the person, by the
	// product's name in the registry (events, tracker, counter, …).
	Products map[string]any `json:"products"`
	// NotKept names what the products do not store (yet), so the reader
	// knows it was not forgotten.
	NotKept []string `json:"not_kept"`
}

// ExportKey is where request rid's export of user uid is stored.
func ExportKey(uid, rid string) string { return exportPrefix(uid) + rid + ".json" }

// exportPrefix is where every export of user uid is stored.
func exportPrefix(uid string) string { return "gdpr/" + uid + "/" }

// Handle runs one request.
func (w *Worker) Handle(ctx context.Context, msg jetstream.Msg) error {
	var req subjects.GDPRRequest
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		return consume.Permanentf("decode GDPR request: %v", err)
	}
	if !ids.Valid(req.ID) || !gdpr.ValidUserID(req.UserID) {
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
	doc := Export{
		Generated: w.d.Now().UTC(), RequestID: req.ID, Account: u, Products: map[string]any{},
		NotKept: []string{"events: chat messages, team submissions, engagement analytics (not built yet)"},
	}
	p := personaldata.Person{ID: u.ID, Email: u.Email}
	for _, e := range w.d.Registry {
		if e.None != "" {
			doc.NotKept = append(doc.NotKept, e.Product+": "+e.None)
			continue
		}
		data, err := e.Export(ctx, p)
		if err != nil {
			return fmt.Errorf("export %s data: %w", e.Product, err)
		}
		doc.Products[e.Product] = data
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return consume.Permanent(fmt.Errorf("encode export: %w", err))
	}
	k := ExportKey(u.ID, req.ID)
	if err := w.d.Blobs.Put(ctx, k, bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
		return fmt.Errorf("store export %s: %w", k, err)
	}
	// The export goes when its link stops working. The schedule is set
	// before the mail, so no link is sent for an export that would stay.
	expires := w.d.Now().Add(w.d.ExportTTL)
	if err := gdpr.ScheduleExportExpiry(ctx, w.d.JS, req.ID, k, expires); err != nil {
		return err
	}
	link, err := w.d.Blobs.URL(ctx, k, w.d.ExportTTL)
	if err != nil {
		return fmt.Errorf("link to export %s: %w", k, err)
	}
	w.d.Log.Info("GDPR export stored", "request", req.ID, "products", len(doc.Products))
	return w.d.Mail(ctx, subjects.Mail{
		ID: "gdpr-export:" + req.ID, To: u.Email, Subject: "Your jetfleet data",
		Text: "Hello,\n\nAs you asked, here is a copy of the data jetfleet keeps about you (a JSON document):\n\n" + link +
			"\n\nThe link works for 7 days; then the copy is deleted. If you did not ask for this, tell us by replying to this mail.\n",
	})
}

// HandleExpiry is the gdpr-exports role: it deletes the export a schedule
// names (a GDPR export, or an event's participant CSV mailed by the
// events-export role), once its link has expired. An export
// already deleted (by the person's deletion request) is not an error.
func (w *Worker) HandleExpiry(ctx context.Context, msg jetstream.Msg) error {
	var x subjects.GDPRExportExpiry
	if err := json.Unmarshal(msg.Data(), &x); err != nil {
		return consume.Permanentf("decode export expiry: %v", err)
	}
	// Only ever an export: a malformed message must not delete other blobs.
	if !gdpr.ExpirableKey(x.Key, x.RequestID) {
		return consume.Permanentf("export expiry names %q, not an export", x.Key)
	}
	if err := w.d.Blobs.Delete(ctx, x.Key); err != nil {
		return fmt.Errorf("delete expired export %s: %w", x.Key, err)
	}
	w.d.Log.Info("GDPR export expired and deleted", "request", x.RequestID)
	return nil
}

func (w *Worker) delete(ctx context.Context, req subjects.GDPRRequest) error {
	email := req.Email
	if u, err := w.d.Accounts.User(ctx, req.UserID); err == nil {
		email = u.Email // the account's address is the one its data is under
	} else if !errors.Is(err, accounts.ErrNotFound) {
		return err
	}
	// Every product forgets the person before the account goes, so a
	// deletion cut short is retried with everything still findable.
	p := personaldata.Person{ID: req.UserID, Email: email}
	for _, e := range w.d.Registry {
		if e.Forget == nil {
			continue
		}
		err := e.Forget(ctx, p)
		var unrevoked *personaldata.Unrevoked
		if errors.As(err, &unrevoked) {
			// Our copy is gone; what Google keeps is recorded at once (a
			// retry would no longer know of it) and told to the person.
			w.d.Log.Warn("GDPR deletion could not revoke a grant", "request", req.ID, "product", e.Product, "service", unrevoked.Service, "err", unrevoked.Err)
			note := fmt.Sprintf("%s: %v", e.Product, unrevoked)
			if err := w.d.Requests.AddNote(ctx, req.ID, note); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("forget %s data: %w", e.Product, err)
		}
	}
	exports, err := w.deleteExports(ctx, req.UserID)
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
	w.d.Log.Info("GDPR deletion done", "request", req.ID, "products", len(w.d.Registry), "exports", exports, "sessions", ended)
	if email == "" {
		return nil
	}
	notes, err := w.d.Requests.Notes(ctx, req.ID)
	if err != nil {
		return err
	}
	unrevoked := ""
	if len(notes) > 0 {
		unrevoked = "We could not reach Google to withdraw jetfleet's access to the YouTube channel you connected for A/B tests. " +
			"Our copy of that access is deleted, so we cannot use it; you can remove jetfleet from your Google account's " +
			"third-party access (https://myaccount.google.com/permissions).\n"
	}
	return w.d.Mail(ctx, subjects.Mail{
		ID: "gdpr-delete:" + req.ID, To: email, Subject: "Your jetfleet account and data are deleted",
		Text: "Hello,\n\nAs you asked, your jetfleet account is deleted and you are signed out everywhere.\n" +
			"What you tracked, your Counter and Enricher API keys, earlier copies of your data and the participant lists mailed to you are deleted; the keys and links stop working.\n" +
			"Your event registrations now show a pseudonym instead of your name and address; organisers keep only that " +
			"the seat was taken.\n" + unrevoked + "This is the last mail we send you.\n",
	})
}

// deleteExports deletes everything mailed as a link to user uid (their
// earlier exports, participant CSVs they asked for) from the blob store,
// so the links stop working, cancels the schedules that would have
// deleted them (they name the person's account), and returns how many
// there were.
func (w *Worker) deleteExports(ctx context.Context, uid string) (int, error) {
	var infos []blob.Info
	for _, prefix := range gdpr.MailedPrefixes(uid) {
		in, err := w.d.Blobs.List(ctx, prefix)
		if err != nil {
			return 0, fmt.Errorf("list exports: %w", err)
		}
		infos = append(infos, in...)
	}
	var schedules jetstream.Stream
	if len(infos) > 0 {
		var err error
		if schedules, err = w.d.JS.Stream(ctx, subjects.GDPRExportsStream); err != nil {
			return 0, fmt.Errorf("open %s: %w", subjects.GDPRExportsStream, err)
		}
	}
	for _, in := range infos {
		if err := w.d.Blobs.Delete(ctx, in.Key); err != nil {
			return 0, fmt.Errorf("delete export %s: %w", in.Key, err)
		}
		rid := strings.TrimSuffix(path.Base(in.Key), path.Ext(in.Key))
		if !gdpr.ExpirableKey(in.Key, rid) {
			continue
		}
		if err := schedules.Purge(ctx, jetstream.WithPurgeSubject(subjects.GDPRExportSchedule(rid))); err != nil {
			return 0, fmt.Errorf("cancel expiry of export %s: %w", in.Key, err)
		}
	}
	return len(infos), nil
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
			var o subjects.SessionRecord
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
