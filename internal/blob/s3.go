package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3Config configures an S3 store. main fills it from the settings named in
// the validation messages.
type S3Config struct {
	Endpoint  string // S3_ENDPOINT: host[:port], no scheme
	AccessKey string // S3_ACCESS_KEY
	SecretKey string // S3_SECRET_KEY
	Bucket    string // S3_BUCKET: created if missing
	Region    string // S3_REGION: optional
	UseSSL    bool   // S3_USE_SSL: https instead of http
}

// Validate reports the first setting that is missing or malformed.
func (c S3Config) Validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("S3_ENDPOINT is required (host[:port])")
	case strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("S3_ENDPOINT %q must be host[:port] without a scheme; set S3_USE_SSL for https", c.Endpoint)
	case strings.ContainsAny(c.Endpoint, "/?#"):
		return fmt.Errorf("S3_ENDPOINT %q must be host[:port] without a path", c.Endpoint)
	case c.AccessKey == "":
		return errors.New("S3_ACCESS_KEY is required")
	case c.SecretKey == "":
		return errors.New("S3_SECRET_KEY is required")
	case c.Bucket == "":
		return errors.New("S3_BUCKET is required")
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return fmt.Errorf("S3_BUCKET %q: %w", c.Bucket, err)
	}
	return nil
}

// S3 is a Store in one bucket of an S3-compatible server. It is safe for
// concurrent use.
type S3 struct {
	client *minio.Client
	bucket string
}

var _ Store = (*S3)(nil)

// NewS3 validates cfg, connects, and creates the bucket if it is missing.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("blob: s3 config: %w", err)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.UseSSL,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: s3 client for S3_ENDPOINT %s: %w", cfg.Endpoint, err)
	}
	s := &S3{client: client, bucket: cfg.Bucket}
	if err := s.ensureBucket(ctx, cfg.Region); err != nil {
		return nil, fmt.Errorf("blob: s3 bucket %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	return s, nil
}

func (s *S3) ensureBucket(ctx context.Context, region string) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if exists {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	// Another process may have created it between the check and here.
	if code := errorCode(err); code == minio.BucketAlreadyOwnedByYou {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

// Bucket returns the bucket name.
func (s *S3) Bucket() string { return s.bucket }

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	_, err := s.client.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{
		ContentType: contentTypeOrDefault(contentType),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, mapS3Error(err))
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, fmt.Errorf("get: %w", err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, fmt.Errorf("get %s: %w", key, mapS3Error(err))
	}
	// GetObject is lazy; Stat sends the request, so a missing key fails
	// here rather than on the caller's first Read.
	oi, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, Info{}, fmt.Errorf("get %s: %w", key, mapS3Error(err))
	}
	return obj, s3Info(oi), nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, fmt.Errorf("stat: %w", err)
	}
	oi, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("stat %s: %w", key, mapS3Error(err))
	}
	return s3Info(oi), nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(mapS3Error(err), ErrNotFound) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// List implements Store. S3 does not list content types, so ContentType is
// empty in the results.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	ctx, cancel := context.WithCancel(ctx)
	// Cancelling stops minio-go's listing goroutine if we return early.
	defer cancel()
	var out []Info
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, mapS3Error(oi.Err))
		}
		out = append(out, s3Info(oi))
	}
	// S3 lists in UTF-8 binary order already; sort anyway so the contract
	// does not depend on the server.
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// URL implements Store with a presigned GET.
func (s *S3) URL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("url: %w", err)
	}
	if err := validateExpiry(expiry); err != nil {
		return "", fmt.Errorf("url %s: %w", key, err)
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, key, expiry, url.Values{})
	if err != nil {
		return "", fmt.Errorf("url %s: %w", key, err)
	}
	return u.String(), nil
}

func s3Info(oi minio.ObjectInfo) Info {
	return Info{
		Key:         oi.Key,
		Size:        oi.Size,
		ContentType: oi.ContentType,
		ModTime:     oi.LastModified,
		ETag:        strings.Trim(oi.ETag, `"`),
	}
}

func errorCode(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// mapS3Error makes a missing object ErrNotFound, keeping the S3 error in the
// chain for its details.
func mapS3Error(err error) error {
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code == minio.NoSuchKey || (er.StatusCode == http.StatusNotFound && er.Code != minio.NoSuchBucket)) {
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	}
	return err
}
