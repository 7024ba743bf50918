package events

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// PersonalData is everything the Events product keeps about one person, for
// a GDPR export: their registrations with the consent each records, their
// organiser profile and the events they organise.
type PersonalData struct {
	Registrations   []MyRegistration `json:"registrations"`
	Organiser       *Organiser       `json:"organiser,omitempty"`
	OrganisedEvents []Event          `json:"organised_events"`
}

// PersonalDataOf gathers the data of the person with account uid and
// address email. Registrations are found through that address's index only,
// so nobody else's are ever included.
func (s *Service) PersonalDataOf(ctx context.Context, uid, email string) (PersonalData, error) {
	var d PersonalData
	regs, err := s.MyRegistrations(ctx, email)
	if err != nil {
		return d, err
	}
	d.Registrations = regs
	o, _, err := getJSON[Organiser](ctx, s.catalog, organiserKey(uid))
	switch {
	case err == nil:
		d.Organiser = &o
	case !errors.Is(err, ErrNotFound):
		return d, err
	}
	if d.OrganisedEvents, err = s.OrganiserEvents(ctx, uid); err != nil {
		return d, err
	}
	if d.Registrations == nil {
		d.Registrations = []MyRegistration{}
	}
	if d.OrganisedEvents == nil {
		d.OrganisedEvents = []Event{}
	}
	return d, nil
}

// Pseudonym is the name a deleted participant's registrations show.
func Pseudonym(rid string) string { return "Deleted participant " + rid[:6] }

// ForgetPerson pseudonymises the person's data for a GDPR deletion: each
// registration of email keeps its ids, ticket, status and consent record
// (so organisers' counts and seats stay right) but gets a pseudonym for a
// name and no address; the per-person index is removed; an organiser
// profile loses its address. Earlier revisions of the changed keys are
// purged from the buckets' streams, so no history keeps the old values.
// Events the person organises stay (they are the organiser's published
// content, tied to the account id only). Running it again finds nothing
// left to change. It returns how many registrations were pseudonymised.
func (s *Service) ForgetPerson(ctx context.Context, uid, email string) (int, error) {
	n := 0
	if email, err := normaliseEmail(email); err == nil {
		keys, err := listKeys(ctx, s.regs, "person."+EmailHash(email)+".*.*")
		if err != nil {
			return 0, err
		}
		for _, k := range keys {
			parts := strings.Split(k, ".")
			if len(parts) != 4 {
				continue
			}
			eid, rid := parts[2], parts[3]
			r, changed, err := s.changeReg(ctx, eid, rid, func(r *Registration) (bool, error) {
				if r.Pseudonymised || !strings.EqualFold(r.Email, email) {
					return false, nil
				}
				r.Name, r.Email, r.Pseudonymised = Pseudonym(r.ID), "", true
				return true, nil
			})
			if errors.Is(err, ErrNotFound) {
				changed = false
			} else if err != nil {
				return n, err
			}
			if err := s.purgeHistory(ctx, subjects.EventsRegistrationsBucket, regKey(eid, rid), 1); err != nil {
				return n, err
			}
			// The index key names the address's hash: remove it entirely,
			// delete marker included.
			if err := s.purgeHistory(ctx, subjects.EventsRegistrationsBucket, k, 0); err != nil {
				return n, err
			}
			if changed {
				n++
				e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
				if err != nil && !errors.Is(err, ErrNotFound) {
					return n, err
				}
				if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventPseudonymised, EventID: eid, OrganiserID: e.OrganiserID, RegistrationID: r.ID, TicketTypeID: r.TicketTypeID}, "pseudonymised:"+r.ID); err != nil {
					return n, err
				}
			}
		}
	}
	for {
		o, rev, err := getJSON[Organiser](ctx, s.catalog, organiserKey(uid))
		if errors.Is(err, ErrNotFound) || (err == nil && o.Email == "") {
			break
		}
		if err != nil {
			return n, err
		}
		o.Email = ""
		if _, err := s.catalog.Update(ctx, organiserKey(uid), mustJSON(o), rev); errors.Is(err, jetstream.ErrKeyExists) {
			continue
		} else if err != nil {
			return n, fmt.Errorf("forget organiser %s: %w", uid, err)
		}
		if err := s.purgeHistory(ctx, subjects.EventsCatalogBucket, organiserKey(uid), 1); err != nil {
			return n, err
		}
		break
	}
	return n, nil
}

// purgeHistory removes the stored revisions of a KV key, keeping the last
// keep of them (0 removes the key and its markers entirely).
func (s *Service) purgeHistory(ctx context.Context, bucket, key string, keep uint64) error {
	st, err := s.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return fmt.Errorf("open stream of bucket %s: %w", bucket, err)
	}
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject("$KV." + bucket + "." + key)}
	if keep > 0 {
		opts = append(opts, jetstream.WithPurgeKeep(keep))
	}
	if err := st.Purge(ctx, opts...); err != nil {
		return fmt.Errorf("purge history of %s in %s: %w", key, bucket, err)
	}
	return nil
}
