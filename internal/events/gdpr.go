package events

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// PersonalData is everything the Events product keeps about one person, for
// a GDPR export: their registrations with the consent each records, their
// organiser profile and the events they organise.
type PersonalData struct {
	Registrations   []MyRegistration `json:"registrations"`
	Organiser       *Organiser       `json:"organiser,omitempty"`
	OrganisedEvents []Event          `json:"organised_events"`
	// HostOf lists the events whose organiser invited the person's
	// address as a host (an admin of the live app).
	HostOf []string `json:"host_of"`
	// Teams: per event, their breakout team, the help flags they raised
	// and their team's submission (teams_gdpr.go).
	Teams []TeamData `json:"teams"`
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
	if d.Teams, err = s.teamDataOf(ctx, regs); err != nil {
		return d, err
	}
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
	if addr, err := normaliseEmail(email); err == nil {
		if d.HostOf, err = s.hostedEvents(ctx, addr); err != nil {
			return d, err
		}
	}
	if d.HostOf == nil {
		d.HostOf = []string{}
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
// The address leaves the hosts of every event it was invited to.
// Events the person organises stay (they are the organiser's published
// content, tied to the account id only). Running it again finds nothing
// left to change. It returns how many registrations were pseudonymised.
func (s *Service) ForgetPerson(ctx context.Context, uid, email string) (int, error) {
	n := 0
	if email, err := normaliseEmail(email); err == nil {
		refs, err := s.personRegs(ctx, email)
		if err != nil {
			return 0, err
		}
		var regs jetstream.Stream
		if len(refs) > 0 {
			if regs, err = s.js.Stream(ctx, "KV_"+subjects.EventsRegistrationsBucket); err != nil {
				return 0, fmt.Errorf("open stream of bucket %s: %w", subjects.EventsRegistrationsBucket, err)
			}
		}
		for _, ref := range refs {
			r, changed, err := s.changeReg(ctx, ref.eid, ref.rid, func(r *Registration) (bool, error) {
				if r.Pseudonymised || !strings.EqualFold(r.Email, email) {
					return false, nil
				}
				r.Name, r.Email, r.Pseudonymised = Pseudonym(r.ID), "", true
				return true, nil
			})
			if err != nil && !errors.Is(err, ErrNotFound) {
				return n, err
			}
			if changed {
				n++
			}
			// Published whenever the registration is pseudonymised, not only
			// when this run changed it, and before the index key that finds
			// it is gone: a run cut short after the change publishes on the
			// retry (deduplicated by its message id).
			if err == nil && r.Pseudonymised {
				e, _, err := getJSON[Event](ctx, s.catalog, eventKey(ref.eid))
				if err != nil && !errors.Is(err, ErrNotFound) {
					return n, err
				}
				if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventsKindPseudonymised, EventID: ref.eid, OrganiserID: e.OrganiserID, RegistrationID: r.ID, TicketTypeID: r.TicketTypeID}, "pseudonymised:"+r.ID); err != nil {
					return n, err
				}
			}
			if err := purgeHistory(ctx, regs, subjects.EventsRegistrationsBucket, regKey(ref.eid, ref.rid), 1); err != nil {
				return n, err
			}
			// The index key names the address's hash: remove it entirely,
			// delete marker included.
			if err := purgeHistory(ctx, regs, subjects.EventsRegistrationsBucket, ref.indexKey, 0); err != nil {
				return n, err
			}
		}
		// An address invited as a host is the person's data in someone
		// else's event: it leaves the event, history included.
		if err := s.forgetHost(ctx, email); err != nil {
			return n, err
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
		if _, err := s.catalog.Update(ctx, organiserKey(uid), mustJSON(o), rev); kvjson.Conflict(err) {
			continue
		} else if err != nil {
			return n, fmt.Errorf("forget organiser %s: %w", uid, err)
		}
		catalog, err := s.js.Stream(ctx, "KV_"+subjects.EventsCatalogBucket)
		if err != nil {
			return n, fmt.Errorf("open stream of bucket %s: %w", subjects.EventsCatalogBucket, err)
		}
		if err := purgeHistory(ctx, catalog, subjects.EventsCatalogBucket, organiserKey(uid), 1); err != nil {
			return n, err
		}
		break
	}
	return n, nil
}

// purgeHistory removes the stored revisions of a KV key from its bucket's
// stream st, keeping the last keep of them (0 removes the key and its
// markers entirely).
func purgeHistory(ctx context.Context, st jetstream.Stream, bucket, key string, keep uint64) error {
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(subjects.KVPutSubject(bucket, key))}
	if keep > 0 {
		opts = append(opts, jetstream.WithPurgeKeep(keep))
	}
	if err := st.Purge(ctx, opts...); err != nil {
		return fmt.Errorf("purge history of %s in %s: %w", key, bucket, err)
	}
	return nil
}

// regRef is one registration found through a person's index.
type regRef struct{ eid, rid, indexKey string }

// personRegs lists the registrations in the index of the (normalised)
// address email.
func (s *Service) personRegs(ctx context.Context, email string) ([]regRef, error) {
	keys, err := listKeys(ctx, s.regs, "person."+EmailHash(email)+".*.*")
	if err != nil {
		return nil, err
	}
	refs := make([]regRef, 0, len(keys))
	for _, k := range keys {
		parts := strings.Split(k, ".")
		if len(parts) != 4 {
			continue
		}
		refs = append(refs, regRef{eid: parts[2], rid: parts[3], indexKey: k})
	}
	return refs, nil
}
