package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"jetfleet/subjects"
)

// MaxHosts is how many hosts an organiser may invite to one event.
const MaxHosts = 20

// LivePath is the path of event eid's live app.
func LivePath(eid string) string { return "/events/" + eid + "/live" }

// AddHost invites email to run organiser uid's event eid with them: the
// address (normalised) joins Event.Hosts, which makes whoever signs in with
// it an admin of the live app, and an invitation with the app's link is
// mailed to it. Inviting an address that is already a host changes nothing
// and mails nothing.
func (s *Service) AddHost(ctx context.Context, uid, eid, email string) (Event, error) {
	addr, err := normaliseEmail(email)
	if err != nil || !oneLine(email) {
		return Event{}, &ValidationError{Fields: map[string]string{"host_email": "Give the host's email address, like name@example.com."}}
	}
	added := false
	e, err := s.change(ctx, uid, eid, func(e *Event) error {
		added = false
		if slices.Contains(e.Hosts, addr) {
			return nil
		}
		if len(e.Hosts) >= MaxHosts {
			return &ValidationError{Fields: map[string]string{"host_email": fmt.Sprintf("An event can have at most %d hosts; remove one first.", MaxHosts)}}
		}
		e.Hosts = append(e.Hosts, addr)
		added = true
		return nil
	})
	if err != nil || !added {
		return e, err
	}
	// The host is saved: a mail that cannot be queued is logged, and the
	// organiser can tell the host the link themselves (it is on the page).
	link := strings.TrimRight(s.cfg.BaseURL, "/") + LivePath(eid)
	err = s.cfg.Mail(ctx, subjects.Mail{
		// One invitation per host and event, even when the form is sent
		// twice; inviting again after a removal is a new invitation.
		ID: "events-host:" + eid + ":" + EmailHash(addr) + ":" + e.Updated.Format("20060102T150405"),
		To: addr, Subject: "You are a host of " + OneLine(e.Title),
		Text: fmt.Sprintf("Hello,\n\nThe organiser of %s invited you to host it with them: in its live app you can moderate the chat, "+
			"answer help requests and see the dashboard.\n\n%s – %s (%s)\n\nOpen the live app, signing in with this address (%s):\n\n%s\n",
			e.Title, e.Start.In(e.Location()).Format("Mon 2 Jan 2006 15:04"), e.End.In(e.Location()).Format("Mon 2 Jan 2006 15:04"),
			e.TimeZone, addr, link),
	})
	if err != nil {
		s.cfg.Log.Error("queue host invitation", "event", eid, "err", err)
	}
	return e, nil
}

// RemoveHost takes email off the hosts of organiser uid's event eid; from
// the next request on, it is no admin of the live app. Removing an address
// that is not a host changes nothing.
func (s *Service) RemoveHost(ctx context.Context, uid, eid, email string) (Event, error) {
	addr, err := normaliseEmail(email)
	if err != nil {
		// Not an address: it cannot be among the hosts.
		return s.EventFor(ctx, uid, eid)
	}
	return s.change(ctx, uid, eid, func(e *Event) error {
		e.Hosts = slices.DeleteFunc(e.Hosts, func(h string) bool { return h == addr })
		return nil
	})
}

// hostedEvents lists the ids of the events that have email (normalised)
// among their hosts. It reads every event: GDPR requests are rare, and
// keeping an index by host address would be one more copy of it to forget.
func (s *Service) hostedEvents(ctx context.Context, email string) ([]string, error) {
	keys, err := listKeys(ctx, s.catalog, "event.*")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		e, _, err := getJSON[Event](ctx, s.catalog, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if slices.Contains(e.Hosts, email) {
			out = append(out, e.ID)
		}
	}
	return out, nil
}

// forgetHost takes email (normalised) off the hosts of every event and
// purges the earlier revisions of those events, which still name it.
func (s *Service) forgetHost(ctx context.Context, email string) error {
	eids, err := s.hostedEvents(ctx, email)
	if err != nil || len(eids) == 0 {
		return err
	}
	catalog, err := s.js.Stream(ctx, "KV_"+subjects.EventsCatalogBucket)
	if err != nil {
		return fmt.Errorf("open stream of bucket %s: %w", subjects.EventsCatalogBucket, err)
	}
	for _, eid := range eids {
		e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
		if err != nil {
			return err
		}
		if _, err := s.RemoveHost(ctx, e.OrganiserID, eid, email); err != nil {
			return fmt.Errorf("forget host of %s: %w", eid, err)
		}
		if err := purgeHistory(ctx, catalog, subjects.EventsCatalogBucket, eventKey(eid), 1); err != nil {
			return err
		}
	}
	return nil
}
