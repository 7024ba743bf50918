package main

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"

	"jetfleet/workers/consume"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestInvalidConfigNamesTheSetting(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"NATS_URL": "http://x:4222"}, nil, "NATS_URL"},
		{map[string]string{"JETSTREAM_REPLICAS": "2"}, nil, "JETSTREAM_REPLICAS"},
		{map[string]string{"JETSTREAM_REPLICAS": "three"}, nil, "JETSTREAM_REPLICAS"},
		{map[string]string{"ENRICHER_STATE_SHARDS": "0"}, nil, "ENRICHER_STATE_SHARDS"},
		{map[string]string{"ENRICHER_STATE_SHARDS": "1000"}, nil, "ENRICHER_STATE_SHARDS"},
		{map[string]string{"ENRICHER_HOLD": "10m"}, nil, "ENRICHER_HOLD"},
		{map[string]string{"ENRICHER_HOLD": "soon"}, nil, "ENRICHER_HOLD"},
		{map[string]string{"CLICKHOUSE_URL": "clickhouse://a:b@host:9000/db?dial_timeout=nope"}, nil, "CLICKHOUSE_URL"},
		{map[string]string{"S3_ENDPOINT": "localhost:9000"}, nil, "S3_ACCESS_KEY"},
		{map[string]string{"S3_ENDPOINT": "http://localhost:9000", "S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "b"}, nil, "S3_ENDPOINT"},
		{map[string]string{"S3_USE_SSL": "maybe"}, nil, "S3_USE_SSL"},
		{nil, []string{"--http-addr", "8080"}, "HTTP_ADDR"},
		{map[string]string{"SESSION_SECRET": "short"}, nil, "SESSION_SECRET"},
		{map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
		{map[string]string{"BASE_URL": "example.com"}, nil, "BASE_URL"},
		{map[string]string{"NATS_TLS_CERT": "c.pem"}, nil, "NATS_TLS_CERT"},
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_, err := loadConfig(fs, c.args, env(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v args %v: error %v, want it to name %s", c.env, c.args, err, c.want)
		}
	}
}

func TestDefaultsAreValidAndFlagsBeatEnvironment(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg, err := loadConfig(fs, []string{"--http-addr", ":9999"}, env(map[string]string{"HTTP_ADDR": ":7777", "JETSTREAM_REPLICAS": "3"}))
	if err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if cfg.HTTPAddr != ":9999" || cfg.Replicas != 3 || cfg.NATSURL != "nats://127.0.0.1:4222" {
		t.Fatalf("got %+v", cfg)
	}
}

func TestConfigPrintMasksSecrets(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"config"}, env(map[string]string{
		"SESSION_SECRET": strings.Repeat("z", 40),
		"S3_SECRET_KEY":  "s3-very-secret",
		"CLICKHOUSE_URL": "clickhouse://app:pa55word@db:9000/jetfleet",
	}), &out)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, secret := range []string{"zzzz", "s3-very-secret", "pa55word"} {
		if strings.Contains(s, secret) {
			t.Errorf("config output shows secret %q:\n%s", secret, s)
		}
	}
	if !strings.Contains(s, "clickhouse://app:*****@db:9000/jetfleet") {
		t.Errorf("masked DSN should still show where it points:\n%s", s)
	}
	if !strings.Contains(s, "NATS_URL") || !strings.Contains(s, "nats://127.0.0.1:4222") {
		t.Errorf("config output lacks NATS_URL:\n%s", s)
	}
}

func TestRoleNamesRejectsUnknownRole(t *testing.T) {
	known := []consume.Role{{Name: "a"}, {Name: "b"}}
	if got, err := roleNames("all", known); err != nil || len(got) != 2 {
		t.Fatalf("all = %v, %v", got, err)
	}
	if got, err := roleNames("b", known); err != nil || len(got) != 1 || got[0].Name != "b" {
		t.Fatalf("b = %v, %v", got, err)
	}
	if _, err := roleNames("a,nope", known); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown role error %v", err)
	}
}

func TestTwoRolesWithOneNameFailAtStart(t *testing.T) {
	known := []consume.Role{{Name: "mail"}, {Name: "counter"}, {Name: "mail"}}
	for _, spec := range []string{"all", "counter"} {
		if _, err := roleNames(spec, known); err == nil || !strings.Contains(err.Error(), `worker role "mail" is declared twice`) {
			t.Errorf("roleNames(%q) with mail declared twice: error %v", spec, err)
		}
	}
}

func TestEveryRoleOfTheBinaryHasItsOwnName(t *testing.T) {
	cfg, err := loadConfig(flag.NewFlagSet("worker", flag.ContinueOnError), nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roleNames("all", allRoles(cfg)); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownCommandShowsUsage(t *testing.T) {
	err := run(t.Context(), []string{"launch"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "jetfleet dev") {
		t.Fatalf("error %v", err)
	}
}

func TestServingProcessesRefuseSecretsPublishedInTheRepository(t *testing.T) {
	published := map[string]string{
		"SESSION_SECRET": "6465762d6f6e6c792d6e6f742d7365637265742d6368616e67652d6d652d2121",
		"CLICKHOUSE_URL": "clickhouse://jetfleet:jetfleet-dev-password@127.0.0.1:1/jetfleet",
		"S3_ENDPOINT":    "127.0.0.1:1", "S3_ACCESS_KEY": "jetfleet", "S3_SECRET_KEY": "jetfleet-dev-password", "S3_BUCKET": "b",
		"NATS_URL": "nats://127.0.0.1:1",
	}
	for _, verb := range []string{"edge", "worker", "migrate"} {
		err := run(t.Context(), []string{verb}, env(published), io.Discard)
		if err == nil {
			t.Fatalf("%s started with published secrets", verb)
		}
		for _, name := range []string{"SESSION_SECRET", "CLICKHOUSE_URL", "S3_SECRET_KEY"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("%s: error %q does not name %s", verb, err, name)
			}
		}
	}
}

func TestSiteKeysAreSeparatePerPurposeAndStable(t *testing.T) {
	secret := []byte(strings.Repeat("q", 40))
	a, err := deriveSiteKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := deriveSiteKeys(secret)
	if bytes.Equal(a.CSRF, a.BlobURL) || bytes.Equal(a.CSRF, secret) || bytes.Equal(a.BlobURL, secret) {
		t.Fatal("purposes share a key, or a key is the secret itself")
	}
	if !bytes.Equal(a.CSRF, b.CSRF) || !bytes.Equal(a.BlobURL, b.BlobURL) {
		t.Fatal("derivation is not stable: edges would disagree")
	}
}
