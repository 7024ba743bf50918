package media_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	"jetfleet/internal/media"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func open(t *testing.T) (*media.Service, blob.Store) {
	t.Helper()
	svc, blobs, _ := openJS(t)
	return svc, blobs
}

func openJS(t *testing.T) (*media.Service, blob.Store, jetstream.JetStream) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	signer, err := blob.NewURLSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, "http://site")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := media.Open(ctx, js, blobs)
	if err != nil {
		t.Fatal(err)
	}
	return svc, blobs, js
}

func TestSameContentIsOneItemPerOwnerButEachOwnerHasTheirOwn(t *testing.T) {
	svc, _ := open(t)
	ctx := testenv.Context(t, 10*time.Second)
	a1, created1, err1 := svc.Upload(ctx, "alice", "a.mp4", strings.NewReader("same bytes"))
	a2, created2, err2 := svc.Upload(ctx, "alice", "again.mp4", strings.NewReader("same bytes"))
	b, createdB, errB := svc.Upload(ctx, "bob", "b.mp4", strings.NewReader("same bytes"))
	if err1 != nil || err2 != nil || errB != nil {
		t.Fatal(err1, err2, errB)
	}
	if !created1 || created2 || a1.ID != a2.ID || a2.Name != "a.mp4" {
		t.Errorf("alice twice: created %v/%v ids %s/%s name %q; want one item named a.mp4", created1, created2, a1.ID, a2.ID, a2.Name)
	}
	if !createdB || b.ID == a1.ID {
		t.Errorf("bob's upload of the same bytes: created %v id %s; want his own item", createdB, b.ID)
	}
}

func TestEmptyUploadIsRefused(t *testing.T) {
	svc, _ := open(t)
	if _, _, err := svc.Upload(testenv.Context(t, 5*time.Second), "alice", "empty.mp4", strings.NewReader("")); err == nil {
		t.Error("an empty file was accepted")
	}
}

func TestForgetRemovesEveryUploadOfThePersonWithItsFilesAndOnlyTheirs(t *testing.T) {
	svc, blobs := open(t)
	ctx := testenv.Context(t, 10*time.Second)
	it, _, err := svc.Upload(ctx, "alice", "a.mp4", strings.NewReader("alice's video"))
	if err != nil {
		t.Fatal(err)
	}
	seg := media.RenditionPrefix("alice", it.ID, "480p") + "seg_0000.ts"
	if err := blobs.Put(ctx, seg, strings.NewReader("x"), 1, "video/mp2t"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Upload(ctx, "bob", "b.mp4", strings.NewReader("bob's video")); err != nil {
		t.Fatal(err)
	}
	if items, err := svc.List(ctx, "alice"); err != nil || len(items) != 1 {
		t.Fatalf("alice's uploads before: %d (err %v), want 1", len(items), err)
	}
	for range 2 { // a second run is harmless
		if err := svc.Forget(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if items, _ := svc.List(ctx, "alice"); len(items) != 0 {
		t.Errorf("alice still has %d uploads", len(items))
	}
	if left, _ := blobs.List(ctx, "media/alice/"); len(left) != 0 {
		t.Errorf("alice's files left: %v", left)
	}
	if items, _ := svc.List(ctx, "bob"); len(items) != 1 {
		t.Errorf("bob has %d uploads after alice was forgotten, want 1", len(items))
	}
}

// An upload recorded while its announcement failed is announced when the
// user uploads the file again, instead of staying unprocessed for ever.
func TestUploadNotAnnouncedIsAnnouncedWhenUploadedAgain(t *testing.T) {
	svc, _, js := openJS(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := js.DeleteStream(ctx, subjects.MediaStream); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Upload(ctx, "alice", "a.mp4", strings.NewReader("video")); err == nil {
		t.Fatal("upload reported success although its announcement failed")
	}
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	it, created, err := svc.Upload(ctx, "alice", "a.mp4", strings.NewReader("video"))
	if err != nil || created {
		t.Fatalf("upload again: created %v err %v; want the existing item", created, err)
	}
	stream, _ := js.Stream(ctx, subjects.MediaStream)
	m, err := stream.GetLastMsgForSubject(context.Background(), subjects.MediaUploaded)
	if err != nil || !strings.Contains(string(m.Data), it.ID) {
		t.Errorf("no announcement of %s: %v", it.ID, err)
	}
}
