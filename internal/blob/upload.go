package blob

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Uploader is a Store a browser can upload to directly: PutURL returns a
// URL that accepts one HTTP PUT of the object's bytes until expiry, so
// large files never pass through a form or a JSON body of ours. Both
// stores implement it: S3 presigns a PUT, ObjectStore signs an edge URL
// that Handler accepts. Nothing about the uploaded bytes is trusted: the
// caller checks the object (Stat, Get) before using it.
type Uploader interface {
	PutURL(ctx context.Context, key string, expiry time.Duration) (string, error)
}

// MaxEdgeUpload bounds one PUT that Handler accepts for the object store;
// S3 takes what it takes, and the caller checks the size afterwards.
const MaxEdgeUpload = 16 << 20

var (
	_ Uploader = (*S3)(nil)
	_ Uploader = (*ObjectStore)(nil)
)

// PutURL implements Uploader with a presigned PUT.
func (s *S3) PutURL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("put url: %w", err)
	}
	if err := validateExpiry(expiry); err != nil {
		return "", fmt.Errorf("put url %s: %w", key, err)
	}
	u, err := s.client.PresignedPutObject(ctx, s.bucket, key, expiry)
	if err != nil {
		return "", fmt.Errorf("put url %s: %w", key, err)
	}
	return u.String(), nil
}

// putMarker separates upload signatures from download ones: a GET link
// for a key never works as an upload link for it.
const putMarker = "PUT\n"

// PutURL implements Uploader with an edge URL signed for PUT.
func (s *ObjectStore) PutURL(_ context.Context, key string, expiry time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("put url: %w", err)
	}
	if err := validateExpiry(expiry); err != nil {
		return "", fmt.Errorf("put url %s: %w", key, err)
	}
	exp := time.Now().Add(expiry)
	u := s.signer.URL(s.baseURL, key, exp)
	// Same path, signature over the marked key.
	parsed, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	q := parsed.Query()
	q.Set("sig", s.signer.Sign(putMarker+key, exp))
	parsed.RawQuery = q.Encode()
	return parsed.String(), nil
}

// servePut stores a PUT signed by PutURL: 403 for a bad or expired
// signature, 413 over MaxEdgeUpload.
func (h *handler) servePut(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	unix, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if err != nil {
		http.Error(w, "forbidden: link has no valid expiry", http.StatusForbidden)
		return
	}
	exp := time.Unix(unix, 0)
	if !h.signer.Verify(putMarker+key, exp, q.Get("sig")) || time.Now().After(exp) {
		http.Error(w, "forbidden: upload link is invalid or expired", http.StatusForbidden)
		return
	}
	if r.ContentLength > MaxEdgeUpload {
		http.Error(w, fmt.Sprintf("too large: uploads take at most %d bytes", MaxEdgeUpload), http.StatusRequestEntityTooLarge)
		return
	}
	body := bufio.NewReaderSize(http.MaxBytesReader(w, r.Body, MaxEdgeUpload), 512)
	size := r.ContentLength
	if size < 0 {
		size = -1
	}
	// The uploader's Content-Type is not trusted: GET serves the stored
	// type from this origin, so text/html or SVG would run script here.
	head, _ := body.Peek(512)
	if err := h.store.Put(r.Context(), key, body, size, uploadType(head)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("too large: uploads take at most %d bytes", MaxEdgeUpload), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "blob store unavailable", http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// uploadType is the type stored for a browser's upload: the sniffed one
// when it is a raster image (http.DetectContentType never answers
// image/svg+xml), an opaque download otherwise.
func uploadType(head []byte) string {
	t := http.DetectContentType(head)
	if strings.HasPrefix(t, "image/") {
		return t
	}
	return "application/octet-stream"
}
