package blob_test

import (
	"strings"
	"testing"
	"time"

	"jetfleet/internal/blob"
	"jetfleet/internal/testenv"
)

func TestNewS3RejectsConfigNamingTheSetting(t *testing.T) {
	valid := blob.S3Config{Endpoint: "127.0.0.1:9000", AccessKey: "ak", SecretKey: "sk", Bucket: "blobs"}
	for _, c := range []struct {
		setting string
		mutate  func(*blob.S3Config)
	}{
		{"S3_ENDPOINT", func(c *blob.S3Config) { c.Endpoint = "" }},
		{"S3_ENDPOINT", func(c *blob.S3Config) { c.Endpoint = "http://127.0.0.1:9000" }},
		{"S3_ENDPOINT", func(c *blob.S3Config) { c.Endpoint = "127.0.0.1:9000/path" }},
		{"S3_ACCESS_KEY", func(c *blob.S3Config) { c.AccessKey = "" }},
		{"S3_SECRET_KEY", func(c *blob.S3Config) { c.SecretKey = "" }},
		{"S3_BUCKET", func(c *blob.S3Config) { c.Bucket = "" }},
		{"S3_BUCKET", func(c *blob.S3Config) { c.Bucket = "Not_A_Bucket" }},
	} {
		cfg := valid
		c.mutate(&cfg)
		_, err := blob.NewS3(testenv.Context(t, 5*time.Second), cfg)
		if err == nil || !strings.Contains(err.Error(), c.setting) {
			t.Errorf("NewS3(%+v) = %v, want an error naming %s", cfg, err, c.setting)
		}
	}
}

func TestNewS3WithWrongSecretFails(t *testing.T) {
	_, err := blob.NewS3(testenv.Context(t, 10*time.Second), blob.S3Config{
		Endpoint:  s3Server.Endpoint,
		AccessKey: s3Server.AccessKey,
		SecretKey: "wrong" + s3Server.SecretKey,
		Bucket:    s3Server.Bucket(t),
	})
	if err == nil {
		t.Fatal("NewS3 with a wrong secret succeeded")
	}
}

func TestNewS3KeepsObjectsOfExistingBucket(t *testing.T) {
	ctx := testenv.Context(t, 20*time.Second)
	cfg := blob.S3Config{
		Endpoint:  s3Server.Endpoint,
		AccessKey: s3Server.AccessKey,
		SecretKey: s3Server.SecretKey,
		Bucket:    s3Server.Bucket(t),
	}
	first, err := blob.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	put(t, ctx, first, "kept", "yes", "text/plain")
	second, err := blob.NewS3(ctx, cfg)
	if err != nil {
		t.Fatalf("NewS3 on existing bucket: %v", err)
	}
	if body, _ := getAll(t, ctx, second, "kept"); body != "yes" {
		t.Errorf("body = %q, want yes", body)
	}
}
