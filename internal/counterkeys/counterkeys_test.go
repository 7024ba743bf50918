package counterkeys

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"jetfleet/internal/ids"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestKeysCreatedBeforeTheIndexAreIndexedOnceThenExportedAndForgotten(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	// What the page stored before the index: a record only.
	ada := ids.New()
	legacy := keyPrefix + "legacy-key"
	rec, _ := json.Marshal(subjects.CounterAPIKey{Tenant: TenantOf(ada, "old"), Name: "web", Prefix: legacy[:8], Created: time.Now().UTC()})
	if _, err := s.kv.Create(ctx, Hash(legacy), rec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, "acme.eu", "operator's", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Issue(ctx, NewKey{Owner: ada, Tenant: TenantOf(ada, "new")}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.IndexOwners(ctx); err != nil || n != 1 {
		t.Fatalf("first run indexed %d keys (%v), want the one legacy key", n, err)
	}
	if n, err := s.IndexOwners(ctx); err != nil || n != 0 {
		t.Fatalf("second run indexed %d keys (%v), want none", n, err)
	}
	owned, err := s.OwnedBy(ctx, ada)
	if err != nil || len(owned) != 2 {
		t.Fatalf("ada's export lists %v (%v), want her old and new key", owned, err)
	}
	if n, err := s.ForgetOwner(ctx, ada); err != nil || n != 2 {
		t.Fatalf("forget removed %d keys (%v), want 2", n, err)
	}
	if _, err := s.Lookup(ctx, legacy); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("the legacy key still works after forget: %v", err)
	}
	if owned, _ := s.Owned(ctx, ada); len(owned) != 0 {
		t.Fatalf("index slots left after forget: %v", owned)
	}
}

func TestAPersonsKeysStopAtTheCapEvenWhenCreatedAtOnce(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	uid := ids.New()
	errs := make(chan error, 30)
	for range 30 {
		go func() {
			_, _, err := s.Issue(ctx, NewKey{Owner: uid, Tenant: TenantOf(uid, "t")})
			errs <- err
		}()
	}
	created, refused := 0, 0
	for range 30 {
		switch err := <-errs; {
		case err == nil:
			created++
		case errors.Is(err, ErrTooManyKeys):
			refused++
		default:
			t.Fatal(err)
		}
	}
	if created != MaxKeysPerUser || refused != 10 {
		t.Fatalf("30 concurrent creations: %d created, %d refused; want %d and 10", created, refused, MaxKeysPerUser)
	}
}
