// Package personaldata is the registry of personal data: each product
// declares, in one entry here, which of its buckets hold data about a person
// and how to export and forget that person's data. The gdpr worker role
// (workers/gdpr) walks the registry for every request, so a product added to
// the site is covered by GDPR requests as soon as it has an entry, and the
// tests here fail while a bucket it declares in subjects is claimed by no
// entry (see Unclaimed).
//
// The account itself, sessions, GDPR requests and earlier exports are the
// gdpr role's own business: it exports the account and deletes it last,
// after every product has forgotten the person.
package personaldata

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/abtest"
	"jetfleet/internal/apikeys"
	"jetfleet/internal/blob"
	"jetfleet/internal/chat"
	"jetfleet/internal/crm"
	"jetfleet/internal/events"
	"jetfleet/internal/media"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
)

// Person is whose data a request is about: their account id, and the
// address their data is filed under (kept in the request, since the
// account may already be gone when a deletion is retried).
type Person struct {
	ID    string
	Email string
}

// Entry is one product's personal data.
type Entry struct {
	// Product is the product's name on the site: its path without the
	// slash ("tracker" for /tracker). It keys the product's part of an
	// export.
	Product string
	// Buckets are the KV buckets and object stores (as named in subjects)
	// that hold data about people and that Export and Forget cover.
	Buckets []string
	// None, when not empty, says why the product keeps nothing about
	// people; Export and Forget are then nil.
	None string
	// Export returns the person's data in the product, as a JSON-encodable
	// value.
	Export func(ctx context.Context, p Person) (any, error)
	// Forget deletes (or pseudonymises, where others keep a legitimate
	// record) the person's data in the product. Running it again after it
	// succeeded, or after it failed part way, must be harmless.
	Forget func(ctx context.Context, p Person) error
}

// Deps are what the entries work with.
type Deps struct {
	JS     jetstream.JetStream
	Events *events.Service
	// Blobs holds the files of media uploads, which Forget deletes.
	Blobs blob.Store
	// ClickHouse holds the live event app's engagement rows (heartbeats,
	// messages, help flags, submissions by account id). Nil in a process
	// without ClickHouse, where the events-engagement role cannot run
	// either: there are then no such rows to export or delete.
	ClickHouse driver.Conn
	// ABTests is the Tracker's A/B test domain with Google OAuth
	// configured, so that forgetting a person revokes their grant at
	// Google. Nil opens one without OAuth: the tokens are still deleted,
	// and the Tracker's Forget reports each grant it could not revoke.
	ABTests *abtest.Service
}

// Unrevoked is the error an entry's Forget returns when everything we keep
// about the person is forgotten, our copy of their tokens included, but a
// grant they gave us at an outside service could not be revoked there
// (unreachable, refused, not configured). Nothing is left to retry from
// our side, so the gdpr role does not fail the deletion: it records and
// logs the failure and tells the person, who can remove the grant
// themselves.
type Unrevoked struct {
	// Service names the outside service and what the grant was for.
	Service string
	Err     error
}

func (e *Unrevoked) Error() string {
	return fmt.Sprintf("could not revoke the grant at %s (our copy is deleted): %v", e.Service, e.Err)
}

func (e *Unrevoked) Unwrap() error { return e.Err }

// Registry opens what each product needs and returns every entry, one per
// product of the site.
func Registry(ctx context.Context, d Deps) ([]Entry, error) {
	tracker, err := tracking.Open(ctx, d.JS, tracking.Options{})
	if err != nil {
		return nil, err
	}
	counter, err := apikeys.OpenCounter(ctx, d.JS)
	if err != nil {
		return nil, err
	}
	enricher, err := apikeys.OpenEnricher(ctx, d.JS)
	if err != nil {
		return nil, err
	}
	if d.Blobs == nil {
		return nil, fmt.Errorf("personaldata: Deps.Blobs is required (media uploads are files)")
	}
	mediaItems, err := media.Open(ctx, d.JS, d.Blobs)
	if err != nil {
		return nil, err
	}
	// A/B tests are the Tracker's too.
	abtests := d.ABTests
	if abtests == nil {
		if abtests, err = abtest.Open(ctx, d.JS, abtest.Config{Blobs: d.Blobs}); err != nil {
			return nil, err
		}
	}
	chatStore, err := chat.Open(ctx, d.JS)
	if err != nil {
		return nil, err
	}
	// Listing and deleting CRM credentials needs no TOKEN_KEY.
	crmCreds, err := crm.OpenCredentials(ctx, d.JS, nil)
	if err != nil {
		return nil, err
	}
	exportRuns, err := crm.OpenRuns(ctx, d.JS)
	if err != nil {
		return nil, err
	}
	return []Entry{{
		Product: "events",
		Buckets: []string{subjects.EventsCatalogBucket, subjects.EventsRegistrationsBucket, subjects.EventsCRMBucket, subjects.EventsExportRunsBucket, subjects.EventsTeamsBucket, subjects.EventsHelpBucket},
		Export: func(ctx context.Context, p Person) (any, error) {
			data, err := d.Events.PersonalDataOf(ctx, p.ID, p.Email)
			if err != nil {
				return nil, err
			}
			// Which CRMs an organiser connected, and when; never the
			// (sealed) credentials themselves.
			conns, err := crmCreds.Connections(ctx, p.ID)
			if err != nil {
				return nil, err
			}
			msgs, err := chatStore.OfUser(ctx, p.ID)
			if err != nil {
				return nil, err
			}
			out := eventsData{PersonalData: data, CRMConnections: conns, ChatMessages: msgs, Engagement: []analytics.EngagementRecord{}}
			if d.ClickHouse != nil {
				if out.Engagement, err = analytics.EngagementOf(ctx, d.ClickHouse, p.ID); err != nil {
					return nil, err
				}
			}
			return out, nil
		},
		// Registrations are pseudonymised, not deleted: organisers keep
		// that the seat was taken and the consent it was taken under.
		// An organiser's CRM credentials are deleted; a participant's
		// address leaves the export runs' failure lists (exports read
		// registrations when they run, so nothing sends it again).
		// Chat messages (EVENTS_CHAT, a stream) are deleted.
		// Engagement rows are deleted (the accumulated figures keep only
		// counts).
		// Teams, help flags and submissions name participants by
		// registration id only, so they are pseudonymous with it.
		Forget: func(ctx context.Context, p Person) error {
			if _, err := chatStore.ForgetUser(ctx, p.ID); err != nil {
				return err
			}
			if _, err := d.Events.ForgetPerson(ctx, p.ID, p.Email); err != nil {
				return err
			}
			if err := crmCreds.Forget(ctx, p.ID); err != nil {
				return err
			}
			if _, err := exportRuns.ForgetEmail(ctx, p.Email); err != nil {
				return err
			}
			if d.ClickHouse != nil {
				return analytics.ForgetEngagement(ctx, d.ClickHouse, p.ID)
			}
			return nil
		},
	}, {
		Product: "tracker",
		Buckets: []string{subjects.TrackerBucket, subjects.TrackerABTestsBucket},
		Export: func(ctx context.Context, p Person) (any, error) {
			t, err := tracker.PersonalDataOf(ctx, p.ID)
			if err != nil {
				return nil, err
			}
			ab, err := abtests.PersonalDataOf(ctx, p.ID)
			return struct {
				tracking.PersonalData
				ABTests abtest.PersonalData `json:"ab_tests"`
			}{t, ab}, err
		},
		// The A/B tests' Google grant is revoked and its tokens deleted;
		// a revocation that fails is reported (Unrevoked) once the rest
		// is forgotten.
		Forget: func(ctx context.Context, p Person) error {
			ab, err := abtests.ForgetUser(ctx, p.ID)
			if err != nil {
				return err
			}
			if err := tracker.ForgetUser(ctx, p.ID); err != nil {
				return err
			}
			if ab.Unrevoked != nil {
				return &Unrevoked{Service: "Google (the YouTube channel connected for A/B tests)", Err: ab.Unrevoked}
			}
			return nil
		},
	}, {
		Product: "counter",
		Buckets: []string{subjects.CounterAPIKeysBucket},
		Export: func(ctx context.Context, p Person) (any, error) {
			keys, err := counter.OwnedBy(ctx, p.ID)
			return map[string]any{"api_keys": keys}, err
		},
		Forget: func(ctx context.Context, p Person) error {
			_, err := counter.ForgetOwner(ctx, p.ID)
			return err
		},
	}, {
		Product: "enricher",
		Buckets: []string{subjects.EnricherKeysBucket},
		Export: func(ctx context.Context, p Person) (any, error) {
			keys, err := enricher.OwnedBy(ctx, p.ID)
			return map[string]any{"api_keys": keys}, err
		},
		Forget: func(ctx context.Context, p Person) error {
			_, err := enricher.ForgetOwner(ctx, p.ID)
			return err
		},
	}, {
		Product: "media",
		Buckets: []string{subjects.MediaBucket},
		// The export lists the uploads (name, size, hash, state); the
		// videos themselves are the person's own files.
		Export: func(ctx context.Context, p Person) (any, error) {
			items, err := mediaItems.List(ctx, p.ID)
			return map[string]any{"uploads": items}, err
		},
		// Deletion removes each upload's source, renditions and record.
		Forget: func(ctx context.Context, p Person) error { return mediaItems.Forget(ctx, p.ID) },
	}}, nil
}

// eventsData is the events part of an export: the product's data, the
// CRMs the person connected as an organiser (which and when, never the
// sealed credentials), every chat message they wrote, and their
// engagement in live events.
type eventsData struct {
	events.PersonalData
	CRMConnections map[string]crm.Connection    `json:"crm_connections"`
	ChatMessages   []chat.Message               `json:"chat_messages"`
	Engagement     []analytics.EngagementRecord `json:"engagement"`
}

// Unclaimed names every bucket and object store in subjects that no entry
// claims, with why it needs none: either the gdpr role handles it itself,
// or it holds nothing about people.
func Unclaimed(o subjects.Options) map[string]string {
	m := map[string]string{
		subjects.AccountsUsersBucket:      "the account: exported, and deleted last, by the gdpr role",
		subjects.SessionsBucket:           "sessions: ended by the gdpr role",
		subjects.AccountsMagicLinksBucket: "sign-in links: single use, each expires within 15 minutes",
		subjects.GDPRRequestsBucket:       "GDPR requests: the address is cleared when a deletion is done; each expires after a week",
		subjects.OutboxBucket:             "development installs only (no SMTP): the last mails sent, kept for a newcomer to open their links",
		subjects.BlobStore:                "blobs: thumbnails (about videos), exports mailed as links (GDPR exports, participant CSVs), which the gdpr role deletes with the person they were mailed to, and media uploads, which the media entry deletes",
		subjects.CounterOwnersBucket:      "counter partition leases: no personal data",
		subjects.CounterFreshnessBucket:   "counter freshness per partition: no personal data",
		subjects.EnricherHeldBucket:       "values frozen for a held lesson of a customer's own end user (the customer is the controller), kept 30 minutes",
		subjects.EventsPostBucket:         "per event: accumulated counts (no person named) and the organiser's fee ledger (amounts and Stripe ids, a bookkeeping record kept for accounting)",
	}
	// The Enricher's state is its customers' end users', streamed in by
	// the customer, who decides about it: nothing of our account holders.
	for s := range enricherShards(o) {
		why := "Enricher state of a customer's own end users (the customer is the controller), not of our account holders"
		m[subjects.EnricherUsersBucket(s)] = why
		m[subjects.EnricherSubsBucket(s)] = why
	}
	return m
}

func enricherShards(o subjects.Options) int {
	if o.EnricherStateShards > 0 {
		return o.EnricherStateShards
	}
	return subjects.DefaultEnricherStateShards
}

// Check reports every bucket or object store of subjects that is neither
// claimed by an entry nor listed by Unclaimed, and every entry that is
// neither "None" nor complete.
func Check(entries []Entry, o subjects.Options) []error {
	claimed := Unclaimed(o)
	var errs []error
	for _, e := range entries {
		switch {
		case e.None == "" && (e.Export == nil || e.Forget == nil || len(e.Buckets) == 0):
			errs = append(errs, fmt.Errorf("product %s: an entry needs buckets, Export and Forget, or None saying why not", e.Product))
		case e.None != "" && (e.Export != nil || e.Forget != nil || len(e.Buckets) > 0):
			errs = append(errs, fmt.Errorf("product %s: says None but declares data", e.Product))
		}
		for _, b := range e.Buckets {
			claimed[b] = "product " + e.Product
		}
	}
	var names []string
	for _, kv := range subjects.KeyValues(o) {
		names = append(names, kv.Bucket)
	}
	for _, os := range subjects.ObjectStores(o) {
		names = append(names, os.Bucket)
	}
	for _, n := range names {
		if claimed[n] == "" {
			errs = append(errs, fmt.Errorf("bucket %s: no personal-data entry claims it and it is not listed in Unclaimed; say what it holds about people", n))
		}
	}
	return errs
}
