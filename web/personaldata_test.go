package web

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	"jetfleet/internal/events"
	"jetfleet/internal/personaldata"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// Every product on the site has an entry in the personal-data registry,
// with its data or an explicit reason it has none, so GDPR requests cannot
// leave a product out.
func TestEverySiteProductHasAPersonalDataEntry(t *testing.T) {
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
	for _, p := range allProducts() {
		name := strings.TrimPrefix(p.Path, "/")
		if !slices.ContainsFunc(entries, func(e personaldata.Entry) bool { return e.Product == name }) {
			t.Errorf("site product %s (%s) has no entry in personaldata.Registry: declare its data, or None with why", p.Name, p.Path)
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
