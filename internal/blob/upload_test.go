package blob_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/blob"
	"jetfleet/internal/testenv"
)

func putBody(t *testing.T, u, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "image/png")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A browser uploads straight to the object store through the edge with a
// URL signed for PUT; a download link of the same key does not upload,
// and neither does a tampered one.
func TestPutURLUploadsAndOnlyPutURLsDo(t *testing.T) {
	e := startEdge(t)
	ctx := testenv.Context(t, 10*time.Second)
	up, err := e.store.PutURL(ctx, "abtests/u/t/a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	get, _ := e.store.URL(ctx, "abtests/u/t/a", time.Minute)
	if s := putBody(t, get, "sneaky"); s != http.StatusForbidden {
		t.Fatalf("PUT with a download link: %d, want 403", s)
	}
	if s := putBody(t, strings.Replace(up, "abtests/u/t/a", "abtests/u/t/b", 1), "sneaky"); s != http.StatusForbidden {
		t.Fatalf("PUT to another key: %d, want 403", s)
	}
	if s := putBody(t, up, "\x89PNG fake"); s != http.StatusOK {
		t.Fatalf("PUT: %d", s)
	}
	r, info, err := e.store.Get(ctx, "abtests/u/t/a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "\x89PNG fake" || info.ContentType != "image/png" {
		t.Fatalf("stored %q as %q", b, info.ContentType)
	}
}

// Both stores take a browser's PUT to the URL PutURL gives, and the
// object is then there to check.
func TestPutURLOfEveryStoreStoresTheBody(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			f := impl.open(t)
			up, ok := f.store.(blob.Uploader)
			if !ok {
				t.Fatalf("%s is not an Uploader", impl.name)
			}
			ctx := testenv.Context(t, 10*time.Second)
			u, err := up.PutURL(ctx, "abtests/u/t/a", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if s := putBody(t, u, "thumbnail bytes"); s != http.StatusOK {
				t.Fatalf("PUT: %d", s)
			}
			info, err := f.store.Stat(ctx, "abtests/u/t/a")
			if err != nil || info.Size != int64(len("thumbnail bytes")) {
				t.Fatalf("stat after PUT: %+v %v", info, err)
			}
		})
	}
}
