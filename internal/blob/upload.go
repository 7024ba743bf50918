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

	"github.com/minio/minio-go/v7"
)

// Uploader is a Store a browser can upload to directly: Upload returns
// how to send one object (a form POST or a PUT) until expiry, so large
// files never pass through a form or a JSON body of ours. The store
// itself refuses a body over the limits' size or of another type: S3
// through a presigned POST policy, ObjectStore through an edge URL whose
// signature covers the limits and which Handler enforces. The caller
// still checks the object (Stat, Get) before using it.
type Uploader interface {
	Upload(ctx context.Context, key string, lim Limits, expiry time.Duration) (Upload, error)
}

// Limits bound one direct upload.
type Limits struct {
	// MaxBytes is the largest body taken, 1..MaxEdgeUpload.
	MaxBytes int64
	// TypePrefix is what the object's type must start with ("image/");
	// empty takes any.
	TypePrefix string
}

// Upload is how a browser sends one object: Method "POST" is an S3 form
// (Fields first, then a Content-Type field with the file's type, then the
// file as field "file"), Method "PUT" the bytes as the body with their
// Content-Type.
type Upload struct {
	Method string            `json:"method"`
	URL    string            `json:"url"`
	Fields map[string]string `json:"fields,omitempty"`
}

// MaxEdgeUpload bounds any direct upload (Limits.MaxBytes).
const MaxEdgeUpload = 16 << 20

var (
	_ Uploader = (*S3)(nil)
	_ Uploader = (*ObjectStore)(nil)
)

func (l Limits) validate() error {
	if l.MaxBytes < 1 || l.MaxBytes > MaxEdgeUpload {
		return fmt.Errorf("upload limit %d bytes is outside 1..%d", l.MaxBytes, MaxEdgeUpload)
	}
	return nil
}

// Upload implements Uploader with a presigned POST policy: S3 refuses a
// body outside 1..MaxBytes or a Content-Type not starting with
// TypePrefix, and any other key.
func (s *S3) Upload(ctx context.Context, key string, lim Limits, expiry time.Duration) (Upload, error) {
	if err := ValidateKey(key); err != nil {
		return Upload{}, fmt.Errorf("upload: %w", err)
	}
	if err := validateExpiry(expiry); err != nil {
		return Upload{}, fmt.Errorf("upload %s: %w", key, err)
	}
	if err := lim.validate(); err != nil {
		return Upload{}, fmt.Errorf("upload %s: %w", key, err)
	}
	p := minio.NewPostPolicy()
	for _, err := range []error{
		p.SetBucket(s.bucket), p.SetKey(key), p.SetExpires(time.Now().UTC().Add(expiry)),
		p.SetContentLengthRange(1, lim.MaxBytes), p.SetContentTypeStartsWith(lim.TypePrefix),
	} {
		if err != nil {
			return Upload{}, fmt.Errorf("upload %s: policy: %w", key, err)
		}
	}
	u, fields, err := s.client.PresignedPostPolicy(ctx, p)
	if err != nil {
		return Upload{}, fmt.Errorf("upload %s: %w", key, err)
	}
	// minio-go fills in the prefix as the type; the browser sends the
	// file's own, which the policy checks.
	delete(fields, "Content-Type")
	return Upload{Method: http.MethodPost, URL: u.String(), Fields: fields}, nil
}

// putMarker separates upload signatures from download ones: a GET link
// for a key never works as an upload link for it.
const putMarker = "PUT\n"

// Upload implements Uploader with an edge URL signed for PUT, the
// limits in the URL and under the signature.
func (s *ObjectStore) Upload(_ context.Context, key string, lim Limits, expiry time.Duration) (Upload, error) {
	if err := ValidateKey(key); err != nil {
		return Upload{}, fmt.Errorf("upload: %w", err)
	}
	if err := validateExpiry(expiry); err != nil {
		return Upload{}, fmt.Errorf("upload %s: %w", key, err)
	}
	if err := lim.validate(); err != nil {
		return Upload{}, fmt.Errorf("upload %s: %w", key, err)
	}
	exp := time.Now().Add(expiry)
	u := s.signer.URL(s.baseURL, key, exp)
	// Same path, signature over the marked key and the limits.
	parsed, err := url.Parse(u)
	if err != nil {
		return Upload{}, err
	}
	q := parsed.Query()
	q.Set("max", strconv.FormatInt(lim.MaxBytes, 10))
	q.Set("type", lim.TypePrefix)
	q.Set("sig", s.signer.Sign(putSigned(key, lim), exp))
	parsed.RawQuery = q.Encode()
	return Upload{Method: http.MethodPut, URL: parsed.String()}, nil
}

// putSigned is what an upload link's signature covers.
func putSigned(key string, lim Limits) string {
	return putMarker + key + "\n" + strconv.FormatInt(lim.MaxBytes, 10) + "\n" + lim.TypePrefix
}

// servePut stores a PUT signed by ObjectStore.Upload: 403 for a bad or
// expired signature, 413 over the signed limit (before the body is read
// when it declares its length, and as soon as it passes the limit), 415
// for bytes that do not sniff as the signed type.
func (h *handler) servePut(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q := r.URL.Query()
	unix, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if err != nil {
		http.Error(w, "forbidden: link has no valid expiry", http.StatusForbidden)
		return
	}
	exp := time.Unix(unix, 0)
	maxBytes, _ := strconv.ParseInt(q.Get("max"), 10, 64)
	lim := Limits{MaxBytes: maxBytes, TypePrefix: q.Get("type")}
	if !h.signer.Verify(putSigned(key, lim), exp, q.Get("sig")) || time.Now().After(exp) || lim.validate() != nil {
		http.Error(w, "forbidden: upload link is invalid or expired", http.StatusForbidden)
		return
	}
	tooBig := fmt.Sprintf("too large: this upload takes at most %d bytes", lim.MaxBytes)
	if r.ContentLength > lim.MaxBytes {
		http.Error(w, tooBig, http.StatusRequestEntityTooLarge)
		return
	}
	body := bufio.NewReaderSize(http.MaxBytesReader(w, r.Body, lim.MaxBytes), 512)
	size := r.ContentLength
	if size < 0 {
		size = -1
	}
	// The uploader's Content-Type is not trusted: GET serves the stored
	// type from this origin, so text/html or SVG would run script here.
	head, _ := body.Peek(512)
	ct := uploadType(head)
	if !strings.HasPrefix(ct, lim.TypePrefix) {
		http.Error(w, fmt.Sprintf("unsupported type: this upload takes %s*, the bytes are %s", lim.TypePrefix, http.DetectContentType(head)), http.StatusUnsupportedMediaType)
		return
	}
	if err := h.store.Put(r.Context(), key, body, size, ct); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, tooBig, http.StatusRequestEntityTooLarge)
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
