package personaldata_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	"jetfleet/internal/chat"
	"jetfleet/internal/events"
	"jetfleet/internal/personaldata"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func registry(t *testing.T) []personaldata.Entry {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	svc, err := events.Open(ctx, js, events.Config{BaseURL: "http://site"})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := personaldata.Registry(ctx, personaldata.Deps{JS: js, Events: svc, Blobs: testBlobs(t, js)})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// Every bucket and object store declared in subjects is either claimed by
// a product's entry or listed with the reason it needs none: a product
// adding a bucket of per-user data cannot leave it out of GDPR requests.
func TestEveryBucketIsClaimedByAProductOrSaysWhyNot(t *testing.T) {
	entries := registry(t)
	for _, o := range []subjects.Options{{}, {EnricherStateShards: 7}} {
		for _, err := range personaldata.Check(entries, o) {
			t.Error(err)
		}
	}
}

func TestCheckReportsABucketNobodyClaimsAndAnIncompleteEntry(t *testing.T) {
	var entries []personaldata.Entry
	for _, e := range registry(t) {
		switch e.Product {
		case "tracker":
			continue // as if the Tracker had no entry
		case "counter":
			e.Forget = nil // declares data but cannot forget it
		}
		entries = append(entries, e)
	}
	var got []string
	for _, err := range personaldata.Check(entries, subjects.Options{}) {
		got = append(got, err.Error())
	}
	if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "bucket "+subjects.TrackerBucket+":") }) {
		t.Errorf("unclaimed %s not reported: %q", subjects.TrackerBucket, got)
	}
	if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "product counter:") }) {
		t.Errorf("counter entry without Forget not reported: %q", got)
	}
	// The Tracker's entry claims two buckets (tracking, A/B tests).
	if len(got) != 3 {
		t.Errorf("reported %d problems, want 3: %q", len(got), got)
	}
}

func TestEntriesOfAnEmptyPersonExportNothingAndForgetHarmlessly(t *testing.T) {
	ctx := context.Background()
	p := personaldata.Person{ID: "0123456789abcdef01234567", Email: "nobody@example.com"}
	for _, e := range registry(t) {
		if e.None != "" {
			continue
		}
		if _, err := e.Export(ctx, p); err != nil {
			t.Errorf("%s: export of someone without data: %v", e.Product, err)
		}
		for range 2 {
			if err := e.Forget(ctx, p); err != nil {
				t.Errorf("%s: forget someone without data: %v", e.Product, err)
			}
		}
	}
}

// testBlobs is the JetStream object store, as a one-process install has.
func testBlobs(t *testing.T, js jetstream.JetStream) blob.Store {
	t.Helper()
	signer, err := blob.NewURLSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := blob.NewObjectStore(testenv.Context(t, 10*time.Second), js, subjects.BlobStore, signer, "http://site")
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// The events part of an export holds every chat message the person wrote;
// deletion removes them from the chat stream and leaves others' messages.
func TestEventsExportHoldsThePersonsChatMessagesAndDeletionRemovesThem(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	svc, err := events.Open(ctx, js, events.Config{BaseURL: "http://site"})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := personaldata.Registry(ctx, personaldata.Deps{JS: js, Events: svc, Blobs: testBlobs(t, js)})
	if err != nil {
		t.Fatal(err)
	}
	store, err := chat.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"ann", "bob"} {
		if _, _, err := store.Post(ctx, chat.Message{EventID: "ev1", Room: "main", UserID: uid, Name: uid, Text: "hello from " + uid}, "c1"); err != nil {
			t.Fatal(err)
		}
	}
	i := slices.IndexFunc(entries, func(e personaldata.Entry) bool { return e.Product == "events" })
	ann := personaldata.Person{ID: "ann", Email: "ann@example.com"}
	out, err := entries[i].Export(ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	if !strings.Contains(string(b), `"chat_messages":[{`) || !strings.Contains(string(b), "hello from ann") || strings.Contains(string(b), "hello from bob") {
		t.Errorf("export: %s", b)
	}
	if err := entries[i].Forget(ctx, ann); err != nil {
		t.Fatal(err)
	}
	if left, _ := store.OfUser(ctx, "ann"); len(left) != 0 {
		t.Errorf("ann's messages left: %+v", left)
	}
	if left, _ := store.OfUser(ctx, "bob"); len(left) != 1 {
		t.Errorf("bob's messages: %+v", left)
	}
}
