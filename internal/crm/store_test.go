package crm_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"jetfleet/internal/crm"
	"jetfleet/internal/sealed"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// open returns credentials over a fresh bucket, and raw access to the
// bucket's values: get (nil when missing) and put.
func open(t *testing.T) (*crm.Credentials, func(key string) []byte, func(key string, v []byte)) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := context.Background()
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	box, err := sealed.New([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := crm.OpenCredentials(ctx, js, box)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, subjects.EventsCRMBucket)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(key string) []byte {
		e, err := kv.Get(ctx, key)
		if err != nil {
			return nil
		}
		return e.Value()
	}
	put := func(key string, v []byte) {
		if _, err := kv.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	return c, raw, put
}

const alice, bob = "aliceAAAAAAAAAAA", "bobBBBBBBBBBBBBB"

func TestCredentialsAreSealedInKVAndBoundToTheirOrganiser(t *testing.T) {
	c, raw, put := open(t)
	ctx := context.Background()
	token := "pat-na1-11111111-2222-3333-4444-555555555555"
	if err := c.Put(ctx, crm.HubSpot, alice, []byte(token), ""); err != nil {
		t.Fatal(err)
	}
	stored := raw(crm.HubSpot + "." + alice)
	if stored == nil || bytes.Contains(stored, []byte(token)) || bytes.Contains(stored, []byte("pat-na1")) {
		t.Fatalf("KV value holds the token in clear: %s", stored)
	}
	got, err := c.Secret(ctx, crm.HubSpot, alice)
	if err != nil || string(got) != token {
		t.Fatalf("Secret = %q, %v", got, err)
	}
	// Alice's record copied under Bob's key does not open for Bob.
	put(crm.HubSpot+"."+bob, stored)
	if got, err := c.Secret(ctx, crm.HubSpot, bob); !errors.Is(err, sealed.ErrOpen) {
		t.Fatalf("Alice's token opened as Bob's: %q, %v", got, err)
	}
	conns, err := c.Connections(ctx, alice)
	if err != nil || len(conns) != 1 || conns[crm.HubSpot].Connected.IsZero() {
		t.Fatalf("Connections = %+v, %v", conns, err)
	}
	// Disconnecting deletes, history included.
	if err := c.Delete(ctx, crm.HubSpot, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Secret(ctx, crm.HubSpot, alice); !errors.Is(err, crm.ErrNotConnected) {
		t.Fatalf("after disconnect: %v", err)
	}
	if raw(crm.HubSpot+"."+alice) != nil {
		t.Fatal("the sealed value is still in the bucket")
	}
}

func TestOAuthStateIsSingleUseAndBoundToItsOrganiser(t *testing.T) {
	c, _, _ := open(t)
	ctx := context.Background()
	state, _, err := c.BeginOAuth(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.FinishOAuth(ctx, bob, state); !errors.Is(err, crm.ErrBadState) {
		t.Fatalf("Bob finished Alice's connection: %v", err)
	}
	// Bob's attempt spent it: a state is tried once.
	if _, err := c.FinishOAuth(ctx, alice, state); !errors.Is(err, crm.ErrBadState) {
		t.Fatalf("state reused: %v", err)
	}
	state, verifier, _ := c.BeginOAuth(ctx, alice)
	got, err := c.FinishOAuth(ctx, alice, state)
	if err != nil || got != verifier {
		t.Fatalf("FinishOAuth = %q, %v", got, err)
	}
	if _, err := c.FinishOAuth(ctx, alice, state); !errors.Is(err, crm.ErrBadState) {
		t.Fatalf("state reused: %v", err)
	}
}

func TestGDPRDeletionRemovesCredentialsAndTheAddressFromRunFailures(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := context.Background()
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	box, _ := sealed.New([]byte(strings.Repeat("k", 32)))
	creds, _ := crm.OpenCredentials(ctx, js, box)
	runs, err := crm.OpenRuns(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Put(ctx, crm.Salesforce, alice, []byte(`{"refresh_token":"r"}`), "https://x.my.salesforce.com"); err != nil {
		t.Fatal(err)
	}
	run := crm.Run{EventID: "eventAAAAAAAAAAA", Target: crm.HubSpot, RunID: "r1", Status: crm.RunDone,
		Failures: []crm.Failure{{Email: "gone@example.com", Message: "invalid"}, {Email: "kept@example.com", Message: "invalid"}}}
	if _, err := runs.Save(ctx, run, 0); err != nil {
		t.Fatal(err)
	}
	// Without TOKEN_KEY, as the gdpr role opens them.
	forgetter, err := crm.OpenCredentials(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a retried deletion is harmless
		if err := forgetter.Forget(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if _, err := runs.ForgetEmail(ctx, "Gone@Example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if conns, _ := creds.Connections(ctx, alice); len(conns) != 0 {
		t.Fatalf("connections after deletion: %+v", conns)
	}
	got, _, err := runs.Get(ctx, run.EventID, crm.HubSpot)
	if err != nil || len(got.Failures) != 1 || got.Failures[0].Email != "kept@example.com" {
		t.Fatalf("run failures after deletion: %+v, %v", got.Failures, err)
	}
}
