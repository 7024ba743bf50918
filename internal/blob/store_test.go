package blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"jetfleet/internal/blob"
	"jetfleet/internal/testenv"
)

// s3Server is the MinIO server every S3 test shares, each in its own bucket.
var s3Server *testenv.MinIO

func TestMain(m *testing.M) {
	flag.Parse()
	srv, err := testenv.StartMinIO()
	if err != nil {
		fmt.Fprintf(os.Stderr, "internal/blob tests need a MinIO server: %v\n", err)
		os.Exit(1)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "minio on %s ready in %v\n", srv.Endpoint, srv.Startup.Round(time.Millisecond))
	}
	s3Server = srv
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// fixture is one implementation under the contract, in a fresh bucket.
type fixture struct {
	store blob.Store
	// expiredURL returns a correctly signed URL for key whose validity
	// has ended.
	expiredURL func(t *testing.T, key string) string
}

var implementations = []struct {
	name string
	open func(t *testing.T) fixture
}{
	{"S3", openS3},
	{"ObjectStore", openObjectStore},
}

func openS3(t *testing.T) fixture {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	store, err := blob.NewS3(ctx, blob.S3Config{
		Endpoint:  s3Server.Endpoint,
		AccessKey: s3Server.AccessKey,
		SecretKey: s3Server.SecretKey,
		Bucket:    s3Server.Bucket(t),
	})
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return fixture{
		store: store,
		// S3 presigns from the current time with at least 1 s validity,
		// so an expired URL takes a second to make: poll until the
		// server refuses it.
		expiredURL: func(t *testing.T, key string) string {
			u, err := store.URL(ctx, key, time.Second)
			if err != nil {
				t.Fatalf("URL: %v", err)
			}
			testenv.Eventually(t, 15*time.Second, "presigned URL refused after its 1s expiry", func() bool {
				status, _, _ := get(t, u)
				return status == http.StatusForbidden
			})
			return u
		},
	}
}

func openObjectStore(t *testing.T) fixture {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	_, js := testenv.JetStream(t)
	signer := newSigner(t)
	// The store needs the edge's base URL and the edge needs the store:
	// take the address first, attach the handler, then serve.
	edge := httptest.NewUnstartedServer(nil)
	baseURL := "http://" + edge.Listener.Addr().String()
	store, err := blob.NewObjectStore(ctx, js, "BLOBS", signer, baseURL)
	if err != nil {
		t.Fatalf("NewObjectStore: %v", err)
	}
	edge.Config.Handler = blob.Handler(store, signer)
	edge.Start()
	t.Cleanup(edge.Close)
	return fixture{
		store: store,
		expiredURL: func(t *testing.T, key string) string {
			return signer.URL(baseURL, key, time.Now().Add(-time.Minute))
		},
	}
}

func newSigner(t *testing.T) *blob.URLSigner {
	t.Helper()
	signer, err := blob.NewURLSigner([]byte("test secret, 32 bytes long......"))
	if err != nil {
		t.Fatalf("NewURLSigner: %v", err)
	}
	return signer
}

// TestStoreContract runs the behaviour every Store promises against each
// implementation, each case in a fresh bucket.
func TestStoreContract(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, f fixture)
	}{
		{"PutThenGetReturnsSameBytesAndContentType", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "thumbs/a.jpg", "jpeg bytes", "image/jpeg")
			body, info := getAll(t, ctx, f.store, "thumbs/a.jpg")
			if body != "jpeg bytes" {
				t.Errorf("body = %q, want %q", body, "jpeg bytes")
			}
			if info.Key != "thumbs/a.jpg" || info.Size != 10 || info.ContentType != "image/jpeg" {
				t.Errorf("info = %+v, want key thumbs/a.jpg, size 10, image/jpeg", info)
			}
		}},
		{"StatDescribesStoredObject", func(t *testing.T, ctx context.Context, f fixture) {
			before := time.Now().Add(-time.Minute)
			put(t, ctx, f.store, "docs/readme.txt", "hello", "text/plain")
			info, err := f.store.Stat(ctx, "docs/readme.txt")
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if info.Key != "docs/readme.txt" || info.Size != 5 || info.ContentType != "text/plain" {
				t.Errorf("info = %+v, want key docs/readme.txt, size 5, text/plain", info)
			}
			if info.ETag == "" || strings.Contains(info.ETag, `"`) {
				t.Errorf("ETag = %q, want non-empty and unquoted", info.ETag)
			}
			if info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(time.Minute)) {
				t.Errorf("ModTime = %v, want about now", info.ModTime)
			}
		}},
		{"PutWithoutContentTypeStoresOctetStream", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "raw", "x", "")
			if info := stat(t, ctx, f.store, "raw"); info.ContentType != blob.DefaultContentType {
				t.Errorf("ContentType = %q, want %q", info.ContentType, blob.DefaultContentType)
			}
		}},
		{"PutWithUnknownSizeStoresWholeReader", func(t *testing.T, ctx context.Context, f fixture) {
			r := iotest.OneByteReader(strings.NewReader("streamed without a length"))
			if err := f.store.Put(ctx, "stream", r, -1, "text/plain"); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if body, _ := getAll(t, ctx, f.store, "stream"); body != "streamed without a length" {
				t.Errorf("body = %q", body)
			}
		}},
		{"PutOfEmptyObjectRoundTrips", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "empty", "", "text/plain")
			body, info := getAll(t, ctx, f.store, "empty")
			if body != "" || info.Size != 0 {
				t.Errorf("body %q size %d, want empty", body, info.Size)
			}
		}},
		{"PutShorterThanDeclaredSizeFailsAndKeepsPreviousObject", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "k", "old", "text/plain")
			// Not seekable, like a request body: minio-go would retry a
			// seekable one for seconds before giving up.
			short := iotest.OneByteReader(strings.NewReader("short"))
			err := f.store.Put(ctx, "k", short, 10, "text/plain")
			if err == nil {
				t.Fatal("Put of 5 bytes declared as 10 succeeded")
			}
			if body, _ := getAll(t, ctx, f.store, "k"); body != "old" {
				t.Errorf("body after failed put = %q, want %q", body, "old")
			}
		}},
		{"OverwriteReplacesContentTypeAndETag", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "k", "first version", "text/plain")
			old := stat(t, ctx, f.store, "k")
			put(t, ctx, f.store, "k", "second", "application/json")
			body, info := getAll(t, ctx, f.store, "k")
			if body != "second" || info.Size != 6 || info.ContentType != "application/json" {
				t.Errorf("after overwrite body %q info %+v, want second, 6 bytes, application/json", body, info)
			}
			if info.ETag == old.ETag {
				t.Errorf("ETag unchanged by overwrite: %q", info.ETag)
			}
			if list := list(t, ctx, f.store, ""); len(list) != 1 {
				t.Errorf("List after overwrite = %v, want one object", keys(list))
			}
		}},
		{"LargeObjectRoundTrips", func(t *testing.T, ctx context.Context, f fixture) {
			data := make([]byte, 6<<20+12345) // several chunks/parts, not aligned
			rand.Read(data)
			if err := f.store.Put(ctx, "big.bin", bytes.NewReader(data), int64(len(data)), ""); err != nil {
				t.Fatalf("Put: %v", err)
			}
			rc, info, err := f.store.Get(ctx, "big.bin")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer rc.Close()
			h := sha256.New()
			n, err := io.Copy(h, rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if n != int64(len(data)) || info.Size != int64(len(data)) {
				t.Errorf("read %d bytes, info.Size %d, want %d", n, info.Size, len(data))
			}
			if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
				t.Error("content differs from what was put")
			}
		}},
		{"ListReturnsKeysWithPrefixSortedByKey", func(t *testing.T, ctx context.Context, f fixture) {
			for _, k := range []string{"v/2/b", "v/1/z", "w/1", "v/1/a", "v10", "u"} {
				put(t, ctx, f.store, k, k, "text/plain")
			}
			got := list(t, ctx, f.store, "v/")
			if want := []string{"v/1/a", "v/1/z", "v/2/b"}; !slices.Equal(keys(got), want) {
				t.Errorf("List(v/) = %v, want %v", keys(got), want)
			}
			for _, info := range got {
				if info.Size != int64(len(info.Key)) || info.ETag == "" {
					t.Errorf("listed %+v, want size %d and an ETag", info, len(info.Key))
				}
			}
			if got, want := keys(list(t, ctx, f.store, "")), []string{"u", "v/1/a", "v/1/z", "v/2/b", "v10", "w/1"}; !slices.Equal(got, want) {
				t.Errorf("List() = %v, want %v", got, want)
			}
		}},
		{"ListOfUnusedPrefixIsEmpty", func(t *testing.T, ctx context.Context, f fixture) {
			if got := list(t, ctx, f.store, "nothing/"); len(got) != 0 {
				t.Errorf("List on empty bucket = %v", keys(got))
			}
			put(t, ctx, f.store, "a", "a", "")
			if got := list(t, ctx, f.store, "nothing/"); len(got) != 0 {
				t.Errorf("List(nothing/) = %v", keys(got))
			}
		}},
		{"GetAfterDeleteReturnsErrNotFound", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "gone", "soon", "text/plain")
			if err := f.store.Delete(ctx, "gone"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, _, err := f.store.Get(ctx, "gone"); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
			}
			if got := list(t, ctx, f.store, ""); len(got) != 0 {
				t.Errorf("List after Delete = %v", keys(got))
			}
		}},
		{"DeleteOfMissingKeySucceeds", func(t *testing.T, ctx context.Context, f fixture) {
			if err := f.store.Delete(ctx, "never/was"); err != nil {
				t.Errorf("Delete(missing) = %v, want nil", err)
			}
			put(t, ctx, f.store, "twice", "x", "")
			for i := range 2 {
				if err := f.store.Delete(ctx, "twice"); err != nil {
					t.Errorf("Delete #%d = %v, want nil", i+1, err)
				}
			}
		}},
		{"StatAndGetOfMissingKeyReturnErrNotFound", func(t *testing.T, ctx context.Context, f fixture) {
			if _, err := f.store.Stat(ctx, "missing"); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Stat(missing): err = %v, want ErrNotFound", err)
			}
			if rc, _, err := f.store.Get(ctx, "missing"); !errors.Is(err, blob.ErrNotFound) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("Get(missing): err = %v, want ErrNotFound", err)
			}
			if _, err := f.store.Stat(ctx, "missing"); err == nil || !strings.Contains(err.Error(), "missing") {
				t.Errorf("Stat(missing) error %q does not name the key", err)
			}
		}},
		{"URLServesObjectToPlainHTTPGet", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "img/cat.png", "png bytes", "image/png")
			u := signedURL(t, ctx, f.store, "img/cat.png", time.Hour)
			status, body, hdr := get(t, u)
			if status != http.StatusOK || body != "png bytes" {
				t.Fatalf("GET %s = %d %q, want 200 %q", u, status, body, "png bytes")
			}
			if ct := hdr.Get("Content-Type"); ct != "image/png" {
				t.Errorf("Content-Type = %q, want image/png", ct)
			}
			if cl := hdr.Get("Content-Length"); cl != "9" {
				t.Errorf("Content-Length = %q, want 9", cl)
			}
			if hdr.Get("ETag") == "" {
				t.Error("no ETag")
			}
		}},
		{"URLOfKeyWithSpacesAndUnicodeServesObject", func(t *testing.T, ctx context.Context, f fixture) {
			key := "uploads/my file+ü?#%.txt"
			put(t, ctx, f.store, key, "odd name", "text/plain")
			status, body, _ := get(t, signedURL(t, ctx, f.store, key, time.Hour))
			if status != http.StatusOK || body != "odd name" {
				t.Errorf("GET = %d %q, want 200 %q", status, body, "odd name")
			}
			if got := keys(list(t, ctx, f.store, "uploads/")); !slices.Equal(got, []string{key}) {
				t.Errorf("List = %q, want [%q]", got, key)
			}
		}},
		{"URLWithTamperedSignatureIsForbidden", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "secret.txt", "secret", "text/plain")
			u := tamperSignature(t, signedURL(t, ctx, f.store, "secret.txt", time.Hour))
			if status, body, _ := get(t, u); status != http.StatusForbidden {
				t.Errorf("GET tampered URL = %d %q, want 403", status, body)
			}
		}},
		{"URLForOneKeyDoesNotOpenAnother", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "public.txt", "public", "text/plain")
			put(t, ctx, f.store, "private.txt", "private", "text/plain")
			u := signedURL(t, ctx, f.store, "public.txt", time.Hour)
			u = strings.Replace(u, "/public.txt?", "/private.txt?", 1)
			if status, body, _ := get(t, u); status != http.StatusForbidden {
				t.Errorf("GET with swapped key = %d %q, want 403", status, body)
			}
		}},
		{"ExpiredURLIsForbidden", func(t *testing.T, ctx context.Context, f fixture) {
			put(t, ctx, f.store, "old.txt", "old", "text/plain")
			u := f.expiredURL(t, "old.txt")
			if status, body, _ := get(t, u); status != http.StatusForbidden {
				t.Errorf("GET expired URL = %d %q, want 403", status, body)
			}
		}},
		{"URLExpiryOutsideOneSecondToSevenDaysIsRejected", func(t *testing.T, ctx context.Context, f fixture) {
			for _, d := range []time.Duration{0, -time.Minute, time.Millisecond, blob.MaxURLExpiry + time.Second} {
				if _, err := f.store.URL(ctx, "k", d); err == nil {
					t.Errorf("URL with expiry %v succeeded", d)
				}
			}
		}},
		{"InvalidKeysAreRejectedByEveryMethod", func(t *testing.T, ctx context.Context, f fixture) {
			for _, key := range []string{"", "/abs", "a/../b", "..", "a/./b", "a//b", "dir/", "bad\nkey", strings.Repeat("k", blob.MaxKeyLen+1)} {
				errs := map[string]error{
					"Put":    f.store.Put(ctx, key, strings.NewReader("x"), 1, ""),
					"Stat":   errOf(f.store.Stat(ctx, key)),
					"Delete": f.store.Delete(ctx, key),
					"URL":    errOf(f.store.URL(ctx, key, time.Hour)),
				}
				_, _, errs["Get"] = f.store.Get(ctx, key)
				for method, err := range errs {
					if !errors.Is(err, blob.ErrInvalidKey) {
						t.Errorf("%s(%.20q): err = %v, want ErrInvalidKey", method, key, err)
					}
				}
			}
			if got := list(t, ctx, f.store, ""); len(got) != 0 {
				t.Errorf("invalid keys stored: %v", keys(got))
			}
		}},
	}
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					f := impl.open(t)
					c.run(t, testenv.Context(t, time.Minute), f)
				})
			}
		})
	}
}

func put(t *testing.T, ctx context.Context, s blob.Store, key, body, contentType string) {
	t.Helper()
	if err := s.Put(ctx, key, strings.NewReader(body), int64(len(body)), contentType); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func getAll(t *testing.T, ctx context.Context, s blob.Store, key string) (string, blob.Info) {
	t.Helper()
	rc, info, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(b), info
}

func stat(t *testing.T, ctx context.Context, s blob.Store, key string) blob.Info {
	t.Helper()
	info, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat(%s): %v", key, err)
	}
	return info
}

func list(t *testing.T, ctx context.Context, s blob.Store, prefix string) []blob.Info {
	t.Helper()
	infos, err := s.List(ctx, prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return infos
}

func signedURL(t *testing.T, ctx context.Context, s blob.Store, key string, expiry time.Duration) string {
	t.Helper()
	u, err := s.URL(ctx, key, expiry)
	if err != nil {
		t.Fatalf("URL(%s): %v", key, err)
	}
	return u
}

// get fetches u the way a browser would: no credentials beyond the URL.
func get(t *testing.T, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read GET %s: %v", u, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// tamperSignature changes one hex digit of the URL's signature, whatever
// the query parameter is called.
func tamperSignature(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	q := u.Query()
	for _, name := range []string{"sig", "X-Amz-Signature"} {
		if sig := q.Get(name); sig != "" {
			last := sig[len(sig)-1]
			flipped := byte('0')
			if last == '0' {
				flipped = '1'
			}
			q.Set(name, sig[:len(sig)-1]+string(flipped))
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	t.Fatalf("no signature in %s", raw)
	return ""
}

func keys(infos []blob.Info) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.Key
	}
	return out
}

func errOf[T any](_ T, err error) error { return err }
