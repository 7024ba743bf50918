package blob_test

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/blob"
	"jetfleet/internal/testenv"
)

// anyUpload is a 1 MiB limit on any type.
var anyUpload = blob.Limits{MaxBytes: 1 << 20}

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
	upload, err := e.store.Upload(ctx, "abtests/u/t/a", anyUpload, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	up := upload.URL
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

// send uploads body as a browser does with u: the S3 form POST (the
// policy's fields, the Content-Type, then the file) or the PUT.
func send(t *testing.T, u blob.Upload, body, contentType string) int {
	t.Helper()
	var req *http.Request
	switch u.Method {
	case http.MethodPost:
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for k, v := range u.Fields {
			mw.WriteField(k, v)
		}
		mw.WriteField("Content-Type", contentType)
		fw, _ := mw.CreateFormFile("file", "upload")
		fw.Write([]byte(body))
		mw.Close()
		req, _ = http.NewRequest(http.MethodPost, u.URL, &b)
		req.Header.Set("Content-Type", mw.FormDataContentType())
	case http.MethodPut:
		req, _ = http.NewRequest(http.MethodPut, u.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
	default:
		t.Fatalf("upload method %q", u.Method)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", u.Method, u.URL, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// Every store takes a browser's upload as Upload describes it, and
// refuses, itself, a body over the limit or of another type than the
// one allowed (S3 by its POST policy, the edge by the signed limits),
// so an oversize or wrong-type object never lands.
func TestUploadOfEveryStoreTakesOnlyTheAllowedSizeAndType(t *testing.T) {
	lim := blob.Limits{MaxBytes: 1024, TypePrefix: "image/"}
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			f := impl.open(t)
			up, ok := f.store.(blob.Uploader)
			if !ok {
				t.Fatalf("%s is not an Uploader", impl.name)
			}
			ctx := testenv.Context(t, 10*time.Second)
			for _, c := range []struct{ name, body, ct string }{
				{"oversize", pngHead + strings.Repeat("x", 2048), "image/png"},
				{"wrong type", "<!DOCTYPE html><script>alert(1)</script>", "text/html"},
			} {
				key := "abtests/u/t/" + strings.ReplaceAll(c.name, " ", "-")
				u, err := up.Upload(ctx, key, lim, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if s := send(t, u, c.body, c.ct); s < 400 || s >= 500 {
					t.Errorf("%s upload: HTTP %d, want a 4xx refusal", c.name, s)
				}
				if _, err := f.store.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
					t.Errorf("%s upload was stored (stat: %v)", c.name, err)
				}
			}
			u, err := up.Upload(ctx, "abtests/u/t/a", lim, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if s := send(t, u, pngHead+"thumbnail bytes", "image/png"); s < 200 || s > 299 {
				t.Fatalf("upload: %d", s)
			}
			info, err := f.store.Stat(ctx, "abtests/u/t/a")
			if err != nil || info.Size != int64(len(pngHead+"thumbnail bytes")) {
				t.Fatalf("stat after upload: %+v %v", info, err)
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
			upload, err := e.store.Upload(ctx, key, anyUpload, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			up := upload.URL
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
