// Package eventsexport is the events-export worker role (seed 001,
// "Exports"). It works through export jobs on subjects.EventsExportsStream:
//
//   - csv: the CSV of an event's consenting participants stored in blob
//     storage, a link valid 7 days mailed to the admin who asked, and the
//     file's deletion scheduled for when the link expires (the GDPR
//     export's schedule and gdpr-exports role, reused);
//   - hubspot, salesforce: the same participants upserted by email into the
//     organiser's CRM in batches (HubSpot ≤100, Salesforce ≤200), with the
//     run record (crm.Runs) updated after every batch: the page shows its
//     progress and per-contact failures, and a job picked up again after a
//     crash resumes after the last finished batch;
//   - post: what the post-event schedule fires; it queues one run per CRM
//     the organiser connected, with a run id per event, so a second firing
//     exports nothing twice.
//
// Participants are read when the job runs, so a person deleted under GDPR
// (pseudonymised) is never exported afterwards. Rate limits wait as long
// as the CRM's Retry-After asks: a short one in the worker, a longer one by
// handing the job back with consume.RetryAfter (NAK with that delay, at
// most MaxRetryAfter), so no consumer goroutine sits out a long wait and
// the job is not retried sooner than asked; other transient failures go
// back to the runtime's backoff and, after the last delivery, to the DLQ.
package eventsexport

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

	"jetfleet/internal/blob"
	"jetfleet/internal/crm"
	"jetfleet/internal/crm/hubspot"
	"jetfleet/internal/crm/salesforce"
	"jetfleet/internal/events"
	"jetfleet/internal/gdpr"
	"jetfleet/internal/ids"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// LinkValidity is how long the mailed link to a CSV works (S3's presign
// limit, as for GDPR exports).
const LinkValidity = 7 * 24 * time.Hour

// Deps are what the role uses.
type Deps struct {
	JS         jetstream.JetStream
	Events     *events.Service
	Runs       *crm.Runs
	Creds      *crm.Credentials
	HubSpot    *hubspot.Client
	Salesforce *salesforce.Client
	Blobs      blob.Store
	Mail       events.Mailer
	Log        *slog.Logger
	Now        func() time.Time
	// Sleep waits out a rate limit; default a timer bound to ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Batch sizes; default (and at most) each CRM's limit.
	HubSpotBatch, SalesforceBatch int
	// MaxWait is the longest Retry-After waited in the worker; a longer
	// one hands the job back to be redelivered after that Retry-After.
	// Default 1 minute (below the consumer's ack wait, which InProgress
	// renews).
	MaxWait time.Duration
	// MaxRetryAfter bounds the delay of a job handed back for a long
	// Retry-After, so a CRM's absurd hint cannot park an export for days.
	// Default 1 hour.
	MaxRetryAfter time.Duration
	// RateLimitTries is how many rate limits in a row one batch waits out
	// before handing back; default 5.
	RateLimitTries int
	// MaxDeliver is the consumer's; on the last delivery a failing run is
	// marked failed before the job goes to the DLQ.
	MaxDeliver int
}

// Worker runs export jobs.
type Worker struct{ d Deps }

// New returns the role's worker.
func New(d Deps) *Worker {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Sleep == nil {
		d.Sleep = func(ctx context.Context, dur time.Duration) error {
			t := time.NewTimer(dur)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if d.HubSpotBatch <= 0 || d.HubSpotBatch > hubspot.MaxBatch {
		d.HubSpotBatch = hubspot.MaxBatch
	}
	if d.SalesforceBatch <= 0 || d.SalesforceBatch > salesforce.MaxBatch {
		d.SalesforceBatch = salesforce.MaxBatch
	}
	if d.MaxWait <= 0 {
		d.MaxWait = time.Minute
	}
	if d.MaxRetryAfter <= 0 {
		d.MaxRetryAfter = time.Hour
	}
	if d.RateLimitTries <= 0 {
		d.RateLimitTries = 5
	}
	return &Worker{d: d}
}

func (w *Worker) now() time.Time { return w.d.Now().UTC() }

// Handle runs one job.
func (w *Worker) Handle(ctx context.Context, msg jetstream.Msg) error {
	var job subjects.EventsExportJob
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		return consume.Permanentf("decode export job: %v", err)
	}
	if !ids.Valid(job.EventID) || job.RunID == "" || strings.ContainsAny(job.RunID, "./*> ") ||
		msg.Subject() != subjects.EventsExportSubject(job.EventID, job.Target) {
		return consume.Permanentf("export job %q of event %q to %q on %s is malformed", job.RunID, job.EventID, job.Target, msg.Subject())
	}
	last := false
	if md, err := msg.Metadata(); err == nil && w.d.MaxDeliver > 0 {
		last = md.NumDelivered >= uint64(w.d.MaxDeliver)
	}
	switch job.Target {
	case subjects.EventsExportPost:
		return w.post(ctx, job)
	case subjects.EventsExportCSV:
		return w.csv(ctx, job, last)
	case crm.HubSpot, crm.Salesforce:
		return w.upsert(ctx, msg, job, last)
	}
	return consume.Permanentf("export job to unknown target %q", job.Target)
}

// post queues the exports into every CRM the organiser connected.
func (w *Worker) post(ctx context.Context, job subjects.EventsExportJob) error {
	e, _, err := w.d.Events.ExportContacts(ctx, job.EventID)
	if errors.Is(err, events.ErrNotFound) {
		return consume.Permanentf("post-event export of unknown event %s", job.EventID)
	}
	if err != nil {
		return err
	}
	conns, err := w.d.Creds.Connections(ctx, e.OrganiserID)
	if err != nil {
		return err
	}
	for _, target := range []string{crm.HubSpot, crm.Salesforce} {
		if _, ok := conns[target]; !ok {
			continue
		}
		err := crm.Request(ctx, w.d.JS, w.d.Runs, subjects.EventsExportJob{
			EventID: job.EventID, Target: target, RunID: subjects.EventsExportPostRunID(job.EventID), At: w.now(),
		})
		if err != nil {
			return err
		}
	}
	w.d.Log.Info("post-event exports queued", "event", job.EventID, "crms", len(conns))
	return nil
}

// CSVKey is where run rid's CSV of event eid, mailed to account uid, is
// stored: under that person, so deleting their data deletes it.
func CSVKey(uid, eid, rid string) string { return gdpr.MailedCSVKey(uid, eid, rid) }

func (w *Worker) csv(ctx context.Context, job subjects.EventsExportJob, last bool) error {
	if !ids.Valid(job.RunID) || job.MailTo == "" || !gdpr.ValidUserID(job.RequestedBy) {
		return consume.Permanentf("CSV export job %s without a run id, an address or the account that asked", job.RunID)
	}
	run, rev, err := w.start(ctx, job)
	if err != nil || run.Status == crm.RunDone {
		return err
	}
	e, contacts, err := w.d.Events.ExportContacts(ctx, job.EventID)
	if err != nil {
		return w.fail(ctx, run, rev, err, last || errors.Is(err, events.ErrNotFound))
	}
	var buf bytes.Buffer
	if err := events.WriteContactsCSV(&buf, contacts); err != nil {
		return consume.Permanent(err)
	}
	k := CSVKey(job.RequestedBy, job.EventID, job.RunID)
	if err := w.d.Blobs.Put(ctx, k, bytes.NewReader(buf.Bytes()), int64(buf.Len()), "text/csv; charset=utf-8"); err != nil {
		return w.fail(ctx, run, rev, fmt.Errorf("store CSV %s: %w", k, err), last)
	}
	// Deleted when the link stops working; scheduled before the mail, so
	// no link goes out for a file that would stay.
	expires := w.now().Add(LinkValidity)
	if err := gdpr.ScheduleExportExpiry(ctx, w.d.JS, job.RunID, k, expires); err != nil {
		return w.fail(ctx, run, rev, err, last)
	}
	link, err := w.d.Blobs.URL(ctx, k, LinkValidity)
	if err != nil {
		return w.fail(ctx, run, rev, fmt.Errorf("link to CSV %s: %w", k, err), last)
	}
	err = w.d.Mail(ctx, subjects.Mail{
		ID: "events-csv:" + job.RunID, To: job.MailTo, Subject: "Participants of " + events.OneLine(e.Title) + " (CSV)",
		Text: fmt.Sprintf("Hello,\n\nAs you asked, here are the participants of %s who agreed to share their name and email with the organiser (%d, CSV, UTF-8):\n\n%s\n\nThe link works for 7 days; then the file is deleted.\n",
			events.OneLine(e.Title), len(contacts), link),
	})
	if err != nil {
		return w.fail(ctx, run, rev, err, last)
	}
	run.Total, run.Done, run.Batches = len(contacts), len(contacts), 1
	run.Status, run.Finished, run.Updated, run.Expires, run.Error = crm.RunDone, w.now(), w.now(), expires, ""
	_, err = w.d.Runs.Save(ctx, run, rev)
	if errors.Is(err, crm.ErrRunChanged) {
		return nil // a newer run replaced it; this one's mail is sent
	}
	return err
}

// start loads the job's run record and marks it running: created when the
// job was published without one, left alone (done, or replaced by a newer
// run) when there is nothing to do — then run.Status is RunDone.
func (w *Worker) start(ctx context.Context, job subjects.EventsExportJob) (crm.Run, uint64, error) {
	for {
		run, rev, err := w.d.Runs.Get(ctx, job.EventID, job.Target)
		switch {
		case errors.Is(err, crm.ErrNoRun):
			run = crm.Run{EventID: job.EventID, Target: job.Target, RunID: job.RunID, RequestedBy: job.RequestedBy, Queued: job.At}
		case err != nil:
			return crm.Run{}, 0, err
		case run.RunID != job.RunID:
			w.d.Log.Info("export run replaced by a newer one; skipped", "event", job.EventID, "target", job.Target, "run", job.RunID)
			return crm.Run{Status: crm.RunDone}, 0, nil
		case run.Status == crm.RunDone:
			return run, rev, nil
		}
		if run.Started.IsZero() {
			run.Started = w.now()
		}
		run.Status, run.Updated, run.Waiting = crm.RunRunning, w.now(), ""
		n, err := w.d.Runs.Save(ctx, run, rev)
		if errors.Is(err, crm.ErrRunChanged) {
			continue
		}
		return run, n, err
	}
}

// fail records cause on the run: failed for good when final (the job is
// then dead-lettered with it), or as the reason of the next retry.
func (w *Worker) fail(ctx context.Context, run crm.Run, rev uint64, cause error, final bool) error {
	run.Error, run.Updated, run.Waiting = cause.Error(), w.now(), ""
	if final {
		run.Status, run.Finished = crm.RunFailed, w.now()
	}
	if _, err := w.d.Runs.Save(ctx, run, rev); err != nil && !errors.Is(err, crm.ErrRunChanged) {
		w.d.Log.Warn("record export failure", "event", run.EventID, "target", run.Target, "err", err)
	}
	if final {
		return consume.Permanent(cause)
	}
	return cause
}

// uploader sends one batch to a CRM.
type uploader func(ctx context.Context, batch []crm.Contact) (crm.BatchResult, error)

func (w *Worker) connect(ctx context.Context, target, organiser string) (uploader, int, error) {
	secret, err := w.d.Creds.Secret(ctx, target, organiser)
	if err != nil {
		return nil, 0, err
	}
	switch target {
	case crm.HubSpot:
		if w.d.HubSpot == nil {
			return nil, 0, errors.New("HubSpot is not configured in this worker")
		}
		token := string(secret)
		return func(ctx context.Context, b []crm.Contact) (crm.BatchResult, error) {
			return w.d.HubSpot.UpsertContacts(ctx, token, b)
		}, w.d.HubSpotBatch, nil
	default:
		if w.d.Salesforce == nil || !w.d.Salesforce.Configured() {
			return nil, 0, errors.New("SALESFORCE_CLIENT_ID: Salesforce is not configured in this worker")
		}
		var conn salesforce.Connection
		if err := json.Unmarshal(secret, &conn); err != nil {
			return nil, 0, fmt.Errorf("decode Salesforce connection: %w", err)
		}
		s := w.d.Salesforce.Session(conn)
		return s.UpsertContacts, w.d.SalesforceBatch, nil
	}
}

func (w *Worker) upsert(ctx context.Context, msg jetstream.Msg, job subjects.EventsExportJob, last bool) error {
	run, rev, err := w.start(ctx, job)
	if err != nil || run.Status == crm.RunDone {
		return err
	}
	e, contacts, err := w.d.Events.ExportContacts(ctx, job.EventID)
	if err != nil {
		return w.fail(ctx, run, rev, err, last || errors.Is(err, events.ErrNotFound))
	}
	send, size, err := w.connect(ctx, job.Target, e.OrganiserID)
	if err != nil {
		// Not connected (or disconnected since): nothing will change by
		// retrying until the organiser connects again.
		return w.fail(ctx, run, rev, err, last || errors.Is(err, crm.ErrNotConnected) || errors.Is(err, crm.ErrUnauthorized))
	}
	// One contact per address, whatever number of tickets it holds: the
	// CRMs refuse a batch naming an id twice.
	seen := map[string]bool{}
	var all []events.Contact
	for _, c := range contacts {
		if k := strings.ToLower(c.Email); !seen[k] {
			seen[k] = true
			all = append(all, c)
		}
	}
	run.Total = len(all)
	todo := all
	if run.Cursor != "" {
		// Resume after the last finished batch: contacts are in
		// registration-id order, so those up to the cursor are done.
		todo = nil
		for _, c := range all {
			if c.RegistrationID > run.Cursor {
				todo = append(todo, c)
			}
		}
		run.Done = run.Total - len(todo)
	}
	for len(todo) > 0 {
		n := min(size, len(todo))
		batch := todo[:n]
		res, err := w.sendBatch(ctx, msg, &run, &rev, send, batch)
		if err != nil {
			final := last || errors.Is(err, crm.ErrUnauthorized)
			if delay, ok := consume.RetryAfterOf(err); ok && !final {
				// Not a failure: the CRM said when. The page shows when it
				// resumes; the runtime redelivers then.
				run.Waiting = fmt.Sprintf("rate limited by the CRM: resumes at %s, as it asked", w.now().Add(delay).Format("15:04 MST"))
				run.Updated = w.now()
				if _, serr := w.save(ctx, run, rev); serr != nil {
					w.d.Log.Warn("record export wait", "event", run.EventID, "target", run.Target, "err", serr)
				}
				return fmt.Errorf("%s export: %w", job.Target, err)
			}
			return w.fail(ctx, run, rev, fmt.Errorf("%s export: %w", job.Target, err), final)
		}
		run.Done += n
		run.Upserted += len(res.Upserted)
		run.Created += res.Created
		run.AddFailures(res.Failed)
		run.NamesFilled += len(res.NameFilled)
		run.Batches++
		run.Cursor = batch[n-1].RegistrationID
		run.Updated, run.Waiting, run.Error = w.now(), "", ""
		if rev, err = w.save(ctx, run, rev); err != nil {
			return err
		}
		if rev == 0 {
			return nil // replaced by a newer run
		}
		_ = msg.InProgress()
		todo = todo[n:]
	}
	run.Status, run.Finished, run.Updated = crm.RunDone, w.now(), w.now()
	if _, err := w.save(ctx, run, rev); err != nil {
		return err
	}
	w.d.Log.Info("export done", "event", job.EventID, "target", job.Target, "run", job.RunID,
		"contacts", run.Total, "upserted", run.Upserted, "failed", len(run.Failures)+run.FailuresOmitted)
	return nil
}

// save writes the run's progress. The role holds the job, so a record
// changed meanwhile is overwritten unless a newer run replaced it: then
// it returns revision 0 and the caller stops.
func (w *Worker) save(ctx context.Context, run crm.Run, rev uint64) (uint64, error) {
	for {
		n, err := w.d.Runs.Save(ctx, run, rev)
		if !errors.Is(err, crm.ErrRunChanged) {
			return n, err
		}
		cur, r, err := w.d.Runs.Get(ctx, run.EventID, run.Target)
		if err != nil {
			return 0, err
		}
		if cur.RunID != run.RunID {
			return 0, nil
		}
		rev = r
	}
}

// sendBatch sends one batch, waiting out rate limits for as long as the
// CRM asks (Retry-After, at most MaxWait, RateLimitTries times), with the
// wait shown on the run record. A longer Retry-After (or one more than
// RateLimitTries in a row) returns consume.RetryAfter with it, capped at
// MaxRetryAfter: the job is redelivered then, not after a short backoff.
func (w *Worker) sendBatch(ctx context.Context, msg jetstream.Msg, run *crm.Run, rev *uint64, send uploader, batch []events.Contact) (crm.BatchResult, error) {
	in := make([]crm.Contact, len(batch))
	for i, c := range batch {
		in[i] = crm.Contact{Email: c.Email, FirstName: c.FirstName, LastName: c.LastName}
	}
	for try := 1; ; try++ {
		res, err := send(ctx, in)
		var rl *crm.RateLimitError
		if !errors.As(err, &rl) {
			return res, err
		}
		wait := rl.RetryAfter
		if wait <= 0 {
			// No hint: the runtime's backoff, which keeps the job (and
			// the cursor) for later.
			return res, err
		}
		if wait > w.d.MaxWait || try >= w.d.RateLimitTries {
			// Too long to hold a consumer goroutine, or too often: hand
			// the job back to come again when the CRM said.
			return res, consume.RetryAfter(min(wait, w.d.MaxRetryAfter), err)
		}
		run.Waiting, run.Updated = fmt.Sprintf("rate limited by the CRM: waiting %s as it asked", wait), w.now()
		if n, serr := w.save(ctx, *run, *rev); serr == nil && n != 0 {
			*rev = n
		}
		_ = msg.InProgress()
		if err := w.d.Sleep(ctx, wait); err != nil {
			return res, err
		}
	}
}
