package apikeys

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"jetfleet/internal/ids"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestKeysCreatedBeforeTheIndexAreIndexedOnceThenExportedAndForgotten(t *testing.T) {
	ctx, s, _ := openBoth(t)
	// What the page stored before the index: a record only.
	ada := ids.New()
	legacy := "jfc_legacy-key"
	rec, _ := json.Marshal(Record{Tenant: TenantOf(ada, "old"), Name: "web", Prefix: legacy[:8], Created: time.Now().UTC()})
	if _, err := s.kv.Create(ctx, Hash(legacy), rec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Issue(ctx, NewKey{Tenant: "acme.eu", Name: "operator's"}); err != nil {
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
	ctx, s, _ := openBoth(t)
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

// The records below are byte for byte what the two products stored before
// they shared this package: keys issued then keep authenticating.
func TestKeysStoredInTodaysJSONStillAuthenticate(t *testing.T) {
	ctx, counter, enricher := openBoth(t)
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name  string
		store *Store
		key   string
		json  string
		want  Record
	}{
		{"counter", counter, "jfc_old-counter-key",
			`{"tenant":"acme.eu","name":"web","prefix":"jfc_old-","rate_limit":50,"read_limit":5,"created":"2026-03-01T12:00:00Z"}`,
			Record{Tenant: "acme.eu", Name: "web", Prefix: "jfc_old-", RateLimit: 50, ReadLimit: 5, Created: created}},
		{"enricher", enricher, "jfe_old-enricher-key",
			`{"name":"alice's pipeline","created":"2026-03-01T12:00:00Z","rate_limit":20,"user":"u123"}`,
			Record{Name: "alice's pipeline", RateLimit: 20, Created: created, UserID: "u123"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.store.kv.Create(ctx, Hash(c.key), []byte(c.json)); err != nil {
				t.Fatal(err)
			}
			got, err := c.store.Lookup(ctx, c.key)
			if err != nil || got != c.want {
				t.Fatalf("lookup of a key stored as %s = %+v, %v; want %+v", c.json, got, err, c.want)
			}
		})
	}
}

// A record written now has the JSON fields each product wrote before, and
// no field of the other product.
func TestIssuedRecordsKeepEachProductsJSONFields(t *testing.T) {
	ctx, counter, enricher := openBoth(t)
	for _, c := range []struct {
		name  string
		store *Store
		key   NewKey
		want  []string
	}{
		{"counter", counter, NewKey{Owner: ids.New(), Tenant: "acme.eu", Name: "web", RateLimit: 50, ReadLimit: 5},
			[]string{"created", "name", "prefix", "rate_limit", "read_limit", "tenant"}},
		{"enricher", enricher, NewKey{Owner: "u123", Name: "pipeline", RateLimit: 20},
			[]string{"created", "name", "rate_limit", "user"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			key, _, err := c.store.Issue(ctx, c.key)
			if err != nil {
				t.Fatal(err)
			}
			e, err := c.store.kv.Get(ctx, Hash(key))
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]any
			if err := json.Unmarshal(e.Value(), &fields); err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(maps.Keys(fields))
			if !slices.Equal(got, c.want) {
				t.Fatalf("record %s has fields %v, want %v", e.Value(), got, c.want)
			}
		})
	}
}

func TestAnEnricherKeyIsExportedAndForgottenWithItsOwner(t *testing.T) {
	ctx, _, s := openBoth(t)
	alices, _, err := s.Issue(ctx, NewKey{Owner: "alice", Name: "alice's app"})
	if err != nil {
		t.Fatal(err)
	}
	bobs, _, err := s.Issue(ctx, NewKey{Owner: "bob", Name: "bob's app"})
	if err != nil {
		t.Fatal(err)
	}
	if owned, err := s.OwnedBy(ctx, "alice"); err != nil || len(owned) != 1 || owned[0].Name != "alice's app" {
		t.Fatalf("alice's export lists %+v (%v), want her one key", owned, err)
	}
	if n, err := s.ForgetOwner(ctx, "alice"); err != nil || n != 1 {
		t.Fatalf("forget removed %d keys (%v), want 1", n, err)
	}
	if _, err := s.Lookup(ctx, alices); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("alice's key still works after forget: %v", err)
	}
	if _, err := s.Lookup(ctx, bobs); err != nil {
		t.Fatalf("bob's key stopped working when alice was forgotten: %v", err)
	}
}

// openBoth provisions a fresh JetStream and opens the stores of both
// products on it.
func openBoth(t *testing.T) (ctx context.Context, counter, enricher *Store) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx = testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	counter, err := OpenCounter(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if enricher, err = OpenEnricher(ctx, js); err != nil {
		t.Fatal(err)
	}
	return ctx, counter, enricher
}
