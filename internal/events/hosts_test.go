package events_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"jetfleet/internal/events"
	"jetfleet/subjects"
)

func TestInvitedHostIsAnAdminUntilRemovedAndIsMailedTheAppLinkOnce(t *testing.T) {
	s, _, mb := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	before := mb.count()

	got, err := s.AddHost(ctx, "org1", e.ID, "  Host <Hana@Example.COM> ")
	if err != nil || !slices.Equal(got.Hosts, []string{"hana@example.com"}) {
		t.Fatalf("AddHost: hosts %v, %v; want the normalised address", got.Hosts, err)
	}
	if _, err := s.AddHost(ctx, "org1", e.ID, "hana@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := mb.count() - before; n != 1 {
		t.Fatalf("%d invitations mailed for one host invited twice; want 1", n)
	}
	inv := mb.sent[len(mb.sent)-1]
	if inv.To != "hana@example.com" || !strings.Contains(inv.Text, "http://site/events/"+e.ID+"/live") {
		t.Fatalf("invitation to %s:\n%s\nwant the app link", inv.To, inv.Text)
	}
	if m, _, err := s.Member(ctx, e.ID, "u-hana", "hana@example.com"); err != nil || !m.Admin {
		t.Fatalf("host: %+v, %v; want an admin", m, err)
	}

	if _, err := s.RemoveHost(ctx, "org1", e.ID, "HANA@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Member(ctx, e.ID, "u-hana", "hana@example.com"); !errors.Is(err, events.ErrNotMember) {
		t.Fatalf("removed host: err = %v; want ErrNotMember", err)
	}
}

func TestHostsAreChangedOnlyByTheOrganiserWithValidAddresses(t *testing.T) {
	s, _, mb := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	before := mb.count()
	var v *events.ValidationError
	for _, bad := range []string{"", "not an address", "a@b\nBcc: x@y.z"} {
		if _, err := s.AddHost(ctx, "org1", e.ID, bad); !errors.As(err, &v) || v.Fields["host_email"] == "" {
			t.Errorf("AddHost(%q) = %v; want a message for host_email", bad, err)
		}
	}
	if _, err := s.AddHost(ctx, "someone-else", e.ID, "eve@example.com"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("another organiser adding a host: %v; want ErrNotFound", err)
	}
	if _, err := s.RemoveHost(ctx, "someone-else", e.ID, "eve@example.com"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("another organiser removing a host: %v; want ErrNotFound", err)
	}
	for i := range events.MaxHosts {
		if _, err := s.AddHost(ctx, "org1", e.ID, "host"+string(rune('a'+i))+"@example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddHost(ctx, "org1", e.ID, "one-too-many@example.com"); !errors.As(err, &v) || !strings.Contains(v.Fields["host_email"], "at most") {
		t.Errorf("host past the limit: %v", err)
	}
	if got, _ := s.EventFor(ctx, "org1", e.ID); len(got.Hosts) != events.MaxHosts {
		t.Errorf("%d hosts stored; want %d", len(got.Hosts), events.MaxHosts)
	}
	if n := mb.count() - before; n != events.MaxHosts {
		t.Errorf("%d invitations for %d hosts", n, events.MaxHosts)
	}
}

func TestGDPRExportListsHostedEventsAndDeletionRemovesTheHostAddress(t *testing.T) {
	s, js, _ := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	if _, err := s.AddHost(ctx, "org1", e.ID, "hana@example.com"); err != nil {
		t.Fatal(err)
	}
	d, err := s.PersonalDataOf(ctx, "u-hana", "hana@example.com")
	if err != nil || !slices.Equal(d.HostOf, []string{e.ID}) {
		t.Fatalf("export: host_of %v, %v; want [%s]", d.HostOf, err, e.ID)
	}
	for range 2 { // a second run finds nothing left
		if _, err := s.ForgetPerson(ctx, "u-hana", "hana@example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.EventFor(ctx, "org1", e.ID); len(got.Hosts) != 0 {
		t.Fatalf("hosts after deletion: %v", got.Hosts)
	}
	kv, err := js.KeyValue(ctx, subjects.EventsCatalogBucket)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := kv.History(ctx, "event."+e.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hist {
		if strings.Contains(string(h.Value()), "hana@") {
			t.Fatalf("revision %d of the event still names the host: %s", h.Revision(), h.Value())
		}
	}
	if d, _ := s.PersonalDataOf(ctx, "u-hana", "hana@example.com"); len(d.HostOf) != 0 {
		t.Fatalf("export after deletion still lists %v", d.HostOf)
	}
}
