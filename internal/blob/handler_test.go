package blob_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/blob"
	"jetfleet/internal/testenv"
)

// edge serves blob.Handler over an object store, as `jetfleet edge` does.
type edge struct {
	store   *blob.ObjectStore
	signer  *blob.URLSigner
	baseURL string
}

func startEdge(t *testing.T) edge {
	t.Helper()
	_, js := testenv.JetStream(t)
	signer := newSigner(t)
	srv := httptest.NewUnstartedServer(nil)
	baseURL := "http://" + srv.Listener.Addr().String()
	store, err := blob.NewObjectStore(testenv.Context(t, 10*time.Second), js, "BLOBS", signer, baseURL)
	if err != nil {
		t.Fatalf("NewObjectStore: %v", err)
	}
	srv.Config.Handler = blob.Handler(store, signer)
	srv.Start()
	t.Cleanup(srv.Close)
	return edge{store: store, signer: signer, baseURL: baseURL}
}

func (e edge) put(t *testing.T, key, body, contentType string) {
	t.Helper()
	put(t, testenv.Context(t, 10*time.Second), e.store, key, body, contentType)
}

func do(t *testing.T, method, u string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestHandlerCacheControlEndsWithURLValidity(t *testing.T) {
	e := startEdge(t)
	e.put(t, "a.txt", "a", "text/plain")
	status, _, hdr := get(t, e.signer.URL(e.baseURL, "a.txt", time.Now().Add(90*time.Second)))
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	cc := hdr.Get("Cache-Control")
	age, err := strconv.Atoi(strings.TrimPrefix(cc, "private, max-age="))
	if err != nil || age > 90 || age < 80 {
		t.Errorf("Cache-Control = %q, want private, max-age of about 90", cc)
	}
	if hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no X-Content-Type-Options: nosniff")
	}
}

func TestHandlerAnswersMissingObjectWithValidSignatureWith404(t *testing.T) {
	e := startEdge(t)
	status, body, _ := get(t, e.signer.URL(e.baseURL, "never/stored", time.Now().Add(time.Hour)))
	if status != http.StatusNotFound {
		t.Errorf("GET missing = %d %q, want 404", status, body)
	}
}

func TestHandlerRefusesUnsignedRequestsWithPlainMessage(t *testing.T) {
	e := startEdge(t)
	e.put(t, "a.txt", "a", "text/plain")
	valid := e.signer.URL(e.baseURL, "a.txt", time.Now().Add(time.Hour))
	for name, u := range map[string]string{
		"no query":       e.baseURL + "/blobs/a.txt",
		"no signature":   strings.Split(valid, "&sig=")[0],
		"expiry changed": strings.Replace(valid, "exp=", "exp=1", 1),
		"bad expiry":     e.baseURL + "/blobs/a.txt?exp=soon&sig=00",
		"expired":        e.signer.URL(e.baseURL, "a.txt", time.Now().Add(-time.Second)),
	} {
		status, body, hdr := get(t, u)
		if status != http.StatusForbidden {
			t.Errorf("%s: GET = %d, want 403", name, status)
		}
		if !strings.HasPrefix(body, "forbidden: ") || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: body %q (%s), want a plain forbidden message", name, body, hdr.Get("Content-Type"))
		}
	}
	if _, body, _ := get(t, e.signer.URL(e.baseURL, "a.txt", time.Now().Add(-time.Second))); !strings.Contains(body, "expired") {
		t.Errorf("expired URL body %q does not say it expired", body)
	}
}

func TestHandlerHeadReturnsHeadersWithoutBody(t *testing.T) {
	e := startEdge(t)
	e.put(t, "a.txt", "hello", "text/plain")
	resp := do(t, http.MethodHead, e.signer.URL(e.baseURL, "a.txt", time.Now().Add(time.Hour)), nil)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != 5 || resp.Header.Get("ETag") == "" {
		t.Errorf("HEAD = %d, length %d, ETag %q; want 200, 5, an ETag", resp.StatusCode, resp.ContentLength, resp.Header.Get("ETag"))
	}
}

func TestHandlerAnswersMatchingIfNoneMatchWith304(t *testing.T) {
	e := startEdge(t)
	e.put(t, "a.txt", "hello", "text/plain")
	u := e.signer.URL(e.baseURL, "a.txt", time.Now().Add(time.Hour))
	_, _, hdr := get(t, u)
	resp := do(t, http.MethodGet, u, http.Header{"If-None-Match": {hdr.Get("ETag")}})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET = %d, want 304", resp.StatusCode)
	}
	e.put(t, "a.txt", "changed", "text/plain")
	resp = do(t, http.MethodGet, u, http.Header{"If-None-Match": {hdr.Get("ETag")}})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("conditional GET after change = %d, want 200", resp.StatusCode)
	}
}

func TestHandlerServesOnlyGetAndHead(t *testing.T) {
	e := startEdge(t)
	e.put(t, "a.txt", "a", "text/plain")
	resp := do(t, http.MethodDelete, e.signer.URL(e.baseURL, "a.txt", time.Now().Add(time.Hour)), nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE = %d, want 405", resp.StatusCode)
	}
}

func TestNewObjectStoreKeepsObjectsOfExistingBucket(t *testing.T) {
	ctx := testenv.Context(t, 10*time.Second)
	_, js := testenv.JetStream(t)
	signer := newSigner(t)
	first, err := blob.NewObjectStore(ctx, js, "BLOBS", signer, "http://edge")
	if err != nil {
		t.Fatal(err)
	}
	put(t, ctx, first, "kept", "yes", "text/plain")
	second, err := blob.NewObjectStore(ctx, js, "BLOBS", signer, "http://edge")
	if err != nil {
		t.Fatalf("NewObjectStore on existing bucket: %v", err)
	}
	if body, _ := getAll(t, ctx, second, "kept"); body != "yes" {
		t.Errorf("body = %q, want yes", body)
	}
}
