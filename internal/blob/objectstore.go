package blob

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ObjectStore is a Store in a JetStream object store bucket. Its URLs point
// at an edge that serves Handler under baseURL. It is safe for concurrent use.
type ObjectStore struct {
	obs     jetstream.ObjectStore
	signer  *URLSigner
	baseURL string
}

var _ Store = (*ObjectStore)(nil)

// NewObjectStore binds to the object store bucket, creating it with defaults
// (file storage, one replica) if it does not exist; provisioning may create
// it first with other settings, which are kept. URLs are signed with signer
// and point at baseURL (scheme, host and optional path prefix of the edge).
func NewObjectStore(ctx context.Context, js jetstream.JetStream, bucket string, signer *URLSigner, baseURL string) (*ObjectStore, error) {
	switch {
	case js == nil:
		return nil, errors.New("blob: object store: nil JetStream")
	case signer == nil:
		return nil, errors.New("blob: object store: nil URL signer")
	case baseURL == "":
		return nil, errors.New("blob: object store: empty base URL")
	}
	obs, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket})
		// Another process may have created it between the lookup and here.
		if errors.Is(err, jetstream.ErrBucketExists) {
			obs, err = js.ObjectStore(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("blob: object store %s: %w", bucket, err)
	}
	return &ObjectStore{
		obs:     obs,
		signer:  signer,
		baseURL: strings.TrimSuffix(baseURL, "/"),
	}, nil
}

// Put implements Store.
func (s *ObjectStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if size >= 0 {
		r = &sizedReader{r: r, left: size}
	}
	meta := jetstream.ObjectMeta{
		Name:    key,
		Headers: nats.Header{"Content-Type": []string{contentTypeOrDefault(contentType)}},
	}
	// On a read error Put purges the chunks it wrote; the previous object,
	// if any, stays.
	if _, err := s.obs.Put(ctx, meta, r); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Get implements Store.
func (s *ObjectStore) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, fmt.Errorf("get: %w", err)
	}
	res, err := s.obs.Get(ctx, key)
	if err != nil {
		return nil, Info{}, fmt.Errorf("get %s: %w", key, mapObjectError(err))
	}
	oi, err := res.Info()
	if err != nil {
		res.Close()
		return nil, Info{}, fmt.Errorf("get %s: %w", key, mapObjectError(err))
	}
	return res, objectInfo(oi), nil
}

// Stat implements Store.
func (s *ObjectStore) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, fmt.Errorf("stat: %w", err)
	}
	oi, err := s.obs.GetInfo(ctx, key)
	if err != nil {
		return Info{}, fmt.Errorf("stat %s: %w", key, mapObjectError(err))
	}
	return objectInfo(oi), nil
}

// Delete implements Store.
func (s *ObjectStore) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := s.obs.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// List implements Store. The object store has no prefix index, so List reads
// the metadata of every object in the bucket.
func (s *ObjectStore) List(ctx context.Context, prefix string) ([]Info, error) {
	all, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	var out []Info
	for _, oi := range all {
		if strings.HasPrefix(oi.Name, prefix) {
			out = append(out, objectInfo(oi))
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// URL implements Store with an edge URL signed by the store's URLSigner.
func (s *ObjectStore) URL(_ context.Context, key string, expiry time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("url: %w", err)
	}
	if err := validateExpiry(expiry); err != nil {
		return "", fmt.Errorf("url %s: %w", key, err)
	}
	return s.signer.URL(s.baseURL, key, time.Now().Add(expiry)), nil
}

func objectInfo(oi *jetstream.ObjectInfo) Info {
	info := Info{
		Key:         oi.Name,
		Size:        int64(oi.Size),
		ContentType: oi.Headers.Get("Content-Type"),
		ModTime:     oi.ModTime,
		ETag:        oi.Digest,
	}
	// The digest reads "SHA-256=<base64url>"; hex makes an ETag that looks
	// like S3's and needs no escaping.
	if sum, err := jetstream.DecodeObjectDigest(oi.Digest); err == nil {
		info.ETag = hex.EncodeToString(sum)
	}
	return info
}

func mapObjectError(err error) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	}
	return err
}
