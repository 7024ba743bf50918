package kvjson_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/kvjson"
	"jetfleet/internal/testenv"
)

var errMissing = errors.New("no such record")

type record struct {
	N     int      `json:"n"`
	Notes []string `json:"notes"`
}

func bucket(t *testing.T, js jetstream.JetStream) (context.Context, jetstream.KeyValue) {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "records"})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return ctx, kv
}

// While Update's first change runs, another writer puts a record: the
// change is applied again, to the other writer's record.
func TestUpdateAppliesTheChangeAgainToWhatAnotherWriterStored(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx, kv := bucket(t, js)
	if err := kvjson.Put(ctx, kv, "r.1", record{N: 1}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, err := kvjson.Update(ctx, kv, "r.1", errMissing, 5, func(r *record) error {
		calls++
		if calls == 1 {
			if err := kvjson.Put(ctx, kv, "r.1", record{N: 10, Notes: []string{"other writer"}}); err != nil {
				t.Fatal(err)
			}
		}
		r.N++
		r.Notes = append(r.Notes, "update")
		return nil
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if calls != 2 {
		t.Errorf("change ran %d times, want 2 (once more after losing the race)", calls)
	}
	var stored record
	if _, err := kvjson.Get(ctx, kv, "r.1", &stored, errMissing); err != nil {
		t.Fatal(err)
	}
	want := record{N: 11, Notes: []string{"other writer", "update"}}
	if stored.N != want.N || len(stored.Notes) != 2 || stored.Notes[0] != want.Notes[0] || stored.Notes[1] != want.Notes[1] {
		t.Errorf("stored %+v, want %+v (the other writer's record, changed)", stored, want)
	}
	if got.N != stored.N {
		t.Errorf("Update returned %+v, stored is %+v", got, stored)
	}
}

func TestUpdateGivesUpAfterItsTries(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx, kv := bucket(t, js)
	if err := kvjson.Put(ctx, kv, "r.1", record{N: 1}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err := kvjson.Update(ctx, kv, "r.1", errMissing, 3, func(r *record) error {
		calls++
		// Another writer gets in every time.
		if err := kvjson.Put(ctx, kv, "r.1", record{N: 100 + calls}); err != nil {
			t.Fatal(err)
		}
		r.N = -1
		return nil
	})
	if !errors.Is(err, kvjson.ErrContended) {
		t.Fatalf("err = %v, want ErrContended", err)
	}
	if calls != 3 {
		t.Errorf("change ran %d times, want 3", calls)
	}
	var stored record
	if _, err := kvjson.Get(ctx, kv, "r.1", &stored, errMissing); err != nil {
		t.Fatal(err)
	}
	if stored.N != 103 {
		t.Errorf("stored N = %d, want the last other writer's 103", stored.N)
	}
}

func TestUpdateWritesNothingWhenTheChangeRefuses(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx, kv := bucket(t, js)
	if err := kvjson.Put(ctx, kv, "r.1", record{N: 1}); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	_, err := kvjson.Update(ctx, kv, "r.1", errMissing, 5, func(r *record) error {
		r.N = 2
		return refused
	})
	if err != refused {
		t.Fatalf("err = %v, want the change's own error, unwrapped", err)
	}
	var stored record
	rev, err := kvjson.Get(ctx, kv, "r.1", &stored, errMissing)
	if err != nil {
		t.Fatal(err)
	}
	if stored.N != 1 || rev != 1 {
		t.Errorf("stored %+v at revision %d, want the untouched record at revision 1", stored, rev)
	}
}

func TestAKeyWithNoRecordIsTheStoresNotFound(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx, kv := bucket(t, js)
	if err := kvjson.Put(ctx, kv, "r.deleted", record{N: 1}); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "r.deleted"); err != nil {
		t.Fatal(err)
	}
	if err := kvjson.Put(ctx, kv, "r.garbled", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "r.garbled", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key     string
		missing bool
	}{
		{"r.never", true},
		{"r.deleted", true},
		{"r..invalid", true},
		{"r.garbled", false},
	} {
		t.Run(tc.key, func(t *testing.T) {
			var r record
			_, err := kvjson.Get(ctx, kv, tc.key, &r, errMissing)
			if errors.Is(err, errMissing) != tc.missing || err == nil {
				t.Errorf("Get: err = %v, want missing=%v", err, tc.missing)
			}
			_, err = kvjson.Update(ctx, kv, tc.key, errMissing, 5, func(*record) error {
				t.Error("change ran on a key with no record")
				return nil
			})
			if errors.Is(err, errMissing) != tc.missing || err == nil {
				t.Errorf("Update: err = %v, want missing=%v", err, tc.missing)
			}
		})
	}
}
