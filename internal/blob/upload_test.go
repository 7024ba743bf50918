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
	return putTyped(t, u, body, "image/png")
}

func putTyped(t *testing.T, u, body, contentType string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
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
	if s := putBody(t, up, pngHead+"fake"); s != http.StatusOK {
		t.Fatalf("PUT: %d", s)
	}
	r, info, err := e.store.Get(ctx, "abtests/u/t/a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != pngHead+"fake" || info.ContentType != "image/png" {
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

// pngHead is the PNG signature: what the edge sniffs an image/png from.
const pngHead = "\x89PNG\r\n\x1a\n"

// The uploader names the Content-Type of a PUT, and downloads are served
// from the site's own origin with the stored type: an HTML page uploaded
// as text/html (behind a valid image header or not) would run script in
// the site's origin for whoever opens its download link. The edge stores
// what it sniffs, and anything that is not an image as an opaque download.
func TestPutStoresSniffedTypeNotTheUploadersHeader(t *testing.T) {
	e := startEdge(t)
	ctx := testenv.Context(t, 10*time.Second)
	for _, c := range []struct{ name, body, claimed, want string }{
		{"html claimed html", "<html><script>alert(document.cookie)</script>", "text/html", "application/octet-stream"},
		{"png claimed html", pngHead + "<script>alert(1)</script>", "text/html; charset=utf-8", "image/png"},
		{"html claimed png", "<!DOCTYPE html><script>alert(1)</script>", "image/png", "application/octet-stream"},
		{"svg claimed svg", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`, "image/svg+xml", "application/octet-stream"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := "abtests/u/t/" + strings.ReplaceAll(c.name, " ", "-")
			up, err := e.store.PutURL(ctx, key, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if s := putTyped(t, up, c.body, c.claimed); s != http.StatusOK {
				t.Fatalf("PUT: %d", s)
			}
			get, _ := e.store.URL(ctx, key, time.Minute)
			resp := do(t, http.MethodGet, get, nil)
			resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != c.want {
				t.Fatalf("served as %q, want %q", ct, c.want)
			}
		})
	}
}
