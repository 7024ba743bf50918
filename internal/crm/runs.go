package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// RunStatus is where an export run is.
type RunStatus string

// Run statuses.
const (
	RunQueued  RunStatus = "queued"
	RunRunning RunStatus = "running"
	RunDone    RunStatus = "done"
	// RunFailed: the run stopped for good (credentials refused, retries
	// exhausted); the page says why.
	RunFailed RunStatus = "failed"
)

// MaxFailuresKept bounds the per-contact failures a run record lists.
const MaxFailuresKept = 500

// Run is the record of an event's last export to one target, updated after
// every batch: the page shows it, and a worker that picks the job up again
// resumes after Cursor.
type Run struct {
	EventID     string    `json:"event_id"`
	Target      string    `json:"target"`
	RunID       string    `json:"run_id"`
	Status      RunStatus `json:"status"`
	RequestedBy string    `json:"requested_by,omitempty"`
	Queued      time.Time `json:"queued"`
	Started     time.Time `json:"started,omitzero"`
	Updated     time.Time `json:"updated"`
	Finished    time.Time `json:"finished,omitzero"`
	// Total contacts to export when the run started; Done of them sent
	// (upserted or refused), in Batches batches.
	Total    int `json:"total"`
	Done     int `json:"done"`
	Upserted int `json:"upserted"`
	Created  int `json:"created"`
	Batches  int `json:"batches"`
	// Cursor is the registration id of the last contact of the last
	// finished batch (contacts go in registration-id order).
	Cursor   string    `json:"cursor,omitempty"`
	Failures []Failure `json:"failures,omitempty"`
	// FailuresOmitted counts failures beyond MaxFailuresKept.
	FailuresOmitted int `json:"failures_omitted,omitempty"`
	// NamesFilled counts contacts sent with a stand-in last name (their
	// name was blank and the CRM requires one; BatchResult.NameFilled).
	NamesFilled int `json:"names_filled,omitempty"`
	// Waiting says why the run is paused (a rate limit), Error why it
	// failed or was last retried.
	Waiting string `json:"waiting,omitempty"`
	Error   string `json:"error,omitempty"`
	// Expires is when the mailed link to the CSV stops working (target
	// csv); the link itself, a bearer URL, is only in the mail.
	Expires time.Time `json:"expires,omitzero"`
}

// Percent is how far the run is, 0–100.
func (r Run) Percent() int {
	if r.Status == RunDone {
		return 100
	}
	if r.Total <= 0 {
		return 0
	}
	return min(100, r.Done*100/r.Total)
}

// AddFailures records refused contacts, keeping at most MaxFailuresKept.
func (r *Run) AddFailures(fs []Failure) {
	for _, f := range fs {
		if len(r.Failures) >= MaxFailuresKept {
			r.FailuresOmitted++
			continue
		}
		r.Failures = append(r.Failures, f)
	}
}

// Runs keeps run records in subjects.EventsExportRunsBucket.
type Runs struct{ kv jetstream.KeyValue }

// OpenRuns binds to the bucket (see subjects.Provision).
func OpenRuns(ctx context.Context, js jetstream.JetStream) (*Runs, error) {
	kv, err := js.KeyValue(ctx, subjects.EventsExportRunsBucket)
	if err != nil {
		return nil, fmt.Errorf("open export runs bucket: %w", err)
	}
	return &Runs{kv: kv}, nil
}

func runKey(eid, target string) string { return "run." + eid + "." + target }

// ErrNoRun is a target never exported for an event.
var ErrNoRun = errors.New("no export run")

// ErrRunChanged is a compare-and-set that lost: someone else wrote the
// record meanwhile.
var ErrRunChanged = errors.New("export run changed meanwhile")

// Get returns the run record of event eid's export to target, with its
// revision for Save.
func (r *Runs) Get(ctx context.Context, eid, target string) (Run, uint64, error) {
	e, err := r.kv.Get(ctx, runKey(eid, target))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Run{}, 0, ErrNoRun
	}
	if err != nil {
		return Run{}, 0, fmt.Errorf("load export run: %w", err)
	}
	var run Run
	if err := json.Unmarshal(e.Value(), &run); err != nil {
		return Run{}, 0, fmt.Errorf("decode export run: %w", err)
	}
	return run, e.Revision(), nil
}

// Save writes run if the record is still at revision rev (0: there is
// none yet), and returns the new revision; ErrRunChanged otherwise.
func (r *Runs) Save(ctx context.Context, run Run, rev uint64) (uint64, error) {
	b, _ := json.Marshal(run)
	var err error
	var n uint64
	if rev == 0 {
		n, err = r.kv.Create(ctx, runKey(run.EventID, run.Target), b)
	} else {
		n, err = r.kv.Update(ctx, runKey(run.EventID, run.Target), b, rev)
	}
	if kvjson.Conflict(err) {
		return 0, ErrRunChanged
	}
	if err != nil {
		return 0, fmt.Errorf("save export run: %w", err)
	}
	return n, nil
}

// Request queues job (an export of an event to a target) for the
// events-export role and records the run as queued, unless a record of
// the same run exists already (a second firing of the post-event schedule
// resumes or leaves alone what the first started). The publish is
// deduplicated by the job's id.
func Request(ctx context.Context, js jetstream.JetStream, runs *Runs, job subjects.EventsExportJob) error {
	if job.At.IsZero() {
		job.At = time.Now().UTC()
	}
	for {
		cur, rev, err := runs.Get(ctx, job.EventID, job.Target)
		if err != nil && !errors.Is(err, ErrNoRun) {
			return err
		}
		if err == nil && cur.RunID == job.RunID {
			break
		}
		run := Run{EventID: job.EventID, Target: job.Target, RunID: job.RunID, Status: RunQueued, RequestedBy: job.RequestedBy, Queued: job.At, Updated: job.At}
		if _, err := runs.Save(ctx, run, rev); errors.Is(err, ErrRunChanged) {
			continue
		} else if err != nil {
			return err
		}
		break
	}
	b, _ := json.Marshal(job)
	if _, err := js.Publish(ctx, subjects.EventsExportSubject(job.EventID, job.Target), b, jetstream.WithMsgID(subjects.EventsExportMsgID(job))); err != nil {
		return fmt.Errorf("queue %s export of %s: %w", job.Target, job.EventID, err)
	}
	return nil
}

// RequestPostEvent is what the post-event schedule (end + 2 h) calls for
// event eid: one job that exports into every CRM the organiser connected.
// Its run id is fixed per event, so however often the schedule fires (or
// its handler is redelivered), each CRM gets one run, resumed if cut short.
func RequestPostEvent(ctx context.Context, js jetstream.JetStream, runs *Runs, eid string) error {
	return Request(ctx, js, runs, subjects.EventsExportJob{EventID: eid, Target: subjects.EventsExportPost, RunID: subjects.EventsExportPostRunID(eid)})
}

// ForgetEmail removes the address email from the failures listed by every
// run record (GDPR deletion of a participant), and returns how many
// records changed. Running it again changes nothing.
func (r *Runs) ForgetEmail(ctx context.Context, email string) (int, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return 0, nil
	}
	lister, err := r.kv.ListKeysFiltered(ctx, "run.*.*")
	if err != nil {
		return 0, fmt.Errorf("list export runs: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	n := 0
	for _, k := range keys {
		parts := strings.SplitN(k, ".", 3)
		if len(parts) != 3 {
			continue
		}
		for {
			run, rev, err := r.Get(ctx, parts[1], parts[2])
			if errors.Is(err, ErrNoRun) {
				break
			}
			if err != nil {
				return n, err
			}
			kept := run.Failures[:0:0]
			for _, f := range run.Failures {
				if !strings.EqualFold(f.Email, email) {
					kept = append(kept, f)
				}
			}
			if len(kept) == len(run.Failures) {
				break
			}
			run.Failures = kept
			if _, err := r.Save(ctx, run, rev); errors.Is(err, ErrRunChanged) {
				continue
			} else if err != nil {
				return n, err
			}
			n++
			break
		}
	}
	return n, nil
}
