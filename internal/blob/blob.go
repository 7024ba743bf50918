// Package blob stores opaque objects (thumbnails, renditions) behind one small
// interface, Store, with two implementations: S3 for any S3-compatible server
// through minio-go (MinIO in production), and ObjectStore for the JetStream
// object store that a one-process install uses when no S3 endpoint is
// configured. Both hand out time-limited URLs a browser can GET: S3 presigns
// them, ObjectStore signs edge URLs that Handler serves.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Info describes a stored object.
type Info struct {
	Key         string
	Size        int64
	ContentType string // may be empty in List results from S3, which does not list it
	ModTime     time.Time
	ETag        string // opaque, unquoted; changes when the content changes
}

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("blob: not found")

// ErrInvalidKey is returned (wrapped) for a key ValidateKey rejects.
var ErrInvalidKey = errors.New("blob: invalid key")

// Store is object storage keyed by slash-separated names.
type Store interface {
	// Put stores size bytes read from r under key, replacing any previous
	// object. size -1 means unknown: r is read to EOF. An empty contentType
	// stores application/octet-stream.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Get opens an object; the caller closes the reader. Reading is bound
	// to ctx.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat describes an object without reading it.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes an object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List describes every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
	// URL returns a URL a browser can GET for expiry (1 s to 7 days) without
	// further credentials. It does not check that the object exists.
	URL(ctx context.Context, key string, expiry time.Duration) (string, error)
}

// DefaultContentType is stored when Put is given no content type.
const DefaultContentType = "application/octet-stream"

// MaxKeyLen is the longest key accepted, S3's limit in bytes.
const MaxKeyLen = 1024

// MaxURLExpiry is the longest validity URL accepts, S3's presign limit.
const MaxURLExpiry = 7 * 24 * time.Hour

// ValidateKey reports whether key can name an object in every Store: a
// non-empty UTF-8 string of at most MaxKeyLen bytes without control
// characters, a leading slash, or empty, "." or ".." segments (keys end up in
// URL paths, where such segments would be rewritten).
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidKey, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, key)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w %q: leading slash", ErrInvalidKey, key)
	}
	if strings.ContainsFunc(key, unicode.IsControl) {
		return fmt.Errorf("%w %q: control character", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w %q: empty path segment", ErrInvalidKey, key)
		case ".", "..":
			return fmt.Errorf("%w %q: %q path segment", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

func validateExpiry(expiry time.Duration) error {
	if expiry < time.Second || expiry > MaxURLExpiry {
		return fmt.Errorf("blob: URL expiry %v outside 1s..%v", expiry, MaxURLExpiry)
	}
	return nil
}

func contentTypeOrDefault(ct string) string {
	if ct == "" {
		return DefaultContentType
	}
	return ct
}

// sizedReader reads exactly n bytes from r, like an HTTP body with a
// Content-Length: it stops after n and fails if r ends before.
type sizedReader struct {
	r    io.Reader
	left int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if err == io.EOF && s.left > 0 {
		return n, fmt.Errorf("%w: %d bytes short of the declared size", io.ErrUnexpectedEOF, s.left)
	}
	if s.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}
