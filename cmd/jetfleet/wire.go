package main

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/blob"
	"jetfleet/internal/crm/hubspot"
	"jetfleet/internal/crm/salesforce"
	"jetfleet/internal/sealed"
	"jetfleet/subjects"
	"jetfleet/web"
)

// connectNATS connects with the configured credentials and TLS and keeps
// reconnecting forever: a worker outlives a NATS node restart.
func connectNATS(cfg *config, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name("jetfleet-" + name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted()) }),
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSNKey != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NATSNKey)
		if err != nil {
			return nil, nil, fmt.Errorf("NATS_NKEY: %w", err)
		}
		opts = append(opts, o)
	}
	if cfg.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSTLSCA))
	}
	if cfg.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSTLSCert, cfg.NATSTLSKey))
	}
	opts = append(opts, extra...)
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %s: %w", cfg.NATSURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

func provisionOptions(cfg *config) subjects.Options {
	return subjects.Options{Replicas: cfg.Replicas, CounterRetention: cfg.counterRetention(), EnricherStateShards: cfg.EnricherStateShards}
}

// openClickHouse connects to CLICKHOUSE_URL and, when migrate is set, brings
// the schema up to date.
func openClickHouse(ctx context.Context, dsn string, migrate bool, log *slog.Logger) (driver.Conn, error) {
	if dsn == "" {
		return nil, errors.New("CLICKHOUSE_URL: required (clickhouse://user:pass@host:9000/db)")
	}
	conn, err := analytics.Open(ctx, analytics.Config{URL: dsn})
	if err != nil {
		return nil, err
	}
	if migrate {
		applied, err := analytics.Migrate(ctx, conn, analytics.Schema(), log)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if len(applied) > 0 {
			log.Info("clickhouse migrations applied", "migrations", strings.Join(applied, ","))
		}
	}
	return conn, nil
}

// openBlobs returns the S3 store when S3_ENDPOINT is set, else the JetStream
// object store, whose URLs the edge serves itself (the returned handler).
func openBlobs(ctx context.Context, cfg *config, js jetstream.JetStream, urlKey []byte) (blob.Store, http.Handler, error) {
	if cfg.S3Endpoint != "" {
		s3, err := blob.NewS3(ctx, blob.S3Config{
			Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
			Bucket: cfg.S3Bucket, Region: cfg.S3Region, UseSSL: cfg.S3UseSSL,
		})
		if err != nil {
			return nil, nil, err
		}
		return s3, nil, nil
	}
	signer, err := blob.NewURLSigner(urlKey)
	if err != nil {
		return nil, nil, err
	}
	store, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, cfg.BaseURL)
	if err != nil {
		return nil, nil, err
	}
	return store, blob.Handler(store, signer), nil
}

// blobOrigin is the origin of presigned S3 URLs, which pages fetch video
// segments from; empty when the edge serves blobs itself.
func (c *config) blobOrigin() string {
	if c.S3Endpoint == "" {
		return ""
	}
	if c.S3UseSSL {
		return "https://" + c.S3Endpoint
	}
	return "http://" + c.S3Endpoint
}

// requireSecret returns SESSION_SECRET for processes that serve users.
func requireSecret(cfg *config) ([]byte, error) {
	if cfg.SessionSecret == "" {
		return nil, errors.New("SESSION_SECRET: required for the edge (32+ random characters, the same on every edge)")
	}
	return []byte(cfg.SessionSecret), nil
}

// tokenBox is the sealed.Box of TOKEN_KEY, for processes that keep or use
// OAuth and CRM tokens (edge and worker); dev generates the key under
// DATA_DIR when it is not set.
func tokenBox(cfg *config, dev bool) (*sealed.Box, error) {
	key := cfg.TokenKey
	if key == "" && dev {
		var err error
		if key, err = dataDirSecret(cfg.DataDir, "token.key"); err != nil {
			return nil, err
		}
	}
	if key == "" {
		return nil, errors.New("TOKEN_KEY: required (32+ random characters, the same on every edge and worker; openssl rand -hex 32)")
	}
	return sealed.New([]byte(key))
}

// siteKeys are the keys each purpose uses, derived from SESSION_SECRET with
// HKDF so that a value learnt in one place (a blob URL's signature) says
// nothing about another (CSRF tokens), and one secret is all an operator
// keeps.
type siteKeys struct {
	CSRF    []byte
	BlobURL []byte
}

func deriveSiteKeys(secret []byte) (siteKeys, error) {
	key := func(purpose string) ([]byte, error) {
		k, err := hkdf.Key(sha256.New, secret, nil, "jetfleet "+purpose+" v1", 32)
		if err != nil {
			return nil, fmt.Errorf("derive %s key: %w", purpose, err)
		}
		return k, nil
	}
	csrf, err := key("csrf")
	if err != nil {
		return siteKeys{}, err
	}
	blobURL, err := key("blob-url")
	if err != nil {
		return siteKeys{}, err
	}
	return siteKeys{CSRF: csrf, BlobURL: blobURL}, nil
}

// devSecret returns SESSION_SECRET, or one generated once and kept under
// DATA_DIR so sessions survive a restart of `jetfleet dev`.
func devSecret(cfg *config) ([]byte, error) {
	if cfg.SessionSecret != "" {
		return []byte(cfg.SessionSecret), nil
	}
	s, err := dataDirSecret(cfg.DataDir, "session.secret")
	return []byte(s), err
}

// dataDirSecret returns the random secret kept in DATA_DIR/name, generating
// it (32 bytes, hex, mode 0600) the first time. `jetfleet dev` keeps every
// secret of a development install this way, so no shipped file holds one.
func dataDirSecret(dataDir, name string) (string, error) {
	path := filepath.Join(dataDir, name)
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return string(b), nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return "", fmt.Errorf("keep %s: %w", name, err)
	}
	return secret, nil
}

// serveHTTP serves h on addr until ctx ends, then shuts down gracefully.
// ready, when not nil, receives the bound address.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return serveListener(ctx, ln, h, log, ready)
}

// serveListener is serveHTTP on a listener already bound.
func serveListener(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, ready func(net.Addr)) error {
	addr := ln.Addr().String()
	// No whole-request ReadTimeout: it would cut WebSockets and large
	// uploads. Page forms get their own body deadline and size limit
	// (web.limitForms) and the APIs theirs; headers are bounded here.
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "addr", addr, "err", err)
	}
	return nil
}

// backbone is what a process holds open: NATS and JetStream, ClickHouse
// (inserts counted in reg), blob storage, and the process's metrics.
type backbone struct {
	nc          *nats.Conn
	js          jetstream.JetStream
	ch          driver.Conn
	blobs       blob.Store
	blobHandler http.Handler // non-nil when the edge serves blobs itself
	tokens      *sealed.Box  // TOKEN_KEY: OAuth and CRM tokens at rest
	reg         *prometheus.Registry
}

// edgeMode is what differs between a production edge and `jetfleet dev`'s.
type edgeMode struct {
	dev  bool // metrics and the outbox on the site, the Stripe stand-in
	demo bool // jetfleet dev --demo: the pages' demo-only actions
}

// buildSite builds the site every process that serves users runs (the
// edge, and dev): its outside clients (YouTube, Stripe) and web.New. close
// stops what it started.
func buildSite(ctx context.Context, cfg *config, b backbone, csrfKey []byte, mode edgeMode, log *slog.Logger) (site http.Handler, close func(), err error) {
	yt, err := newYouTube(cfg, b.reg)
	if err != nil {
		return nil, nil, err
	}
	pay, closePay, err := openPayments(cfg, mode.dev, log)
	if err != nil {
		return nil, nil, err
	}
	ab, err := newABTests(ctx, cfg, b.js, b.tokens, b.blobs, log.With("product", "abtests"))
	if err != nil {
		closePay()
		return nil, nil, err
	}
	closeCRM := func() {}
	if mode.dev {
		if closeCRM, err = openCRMStandIns(cfg, log); err != nil {
			closePay()
			return nil, nil, err
		}
	}
	h, err := web.New(ctx, web.Config{
		SessionSecret: csrfKey, SecureCookies: strings.HasPrefix(cfg.BaseURL, "https:"), BaseURL: cfg.BaseURL,
		CounterRetention: cfg.counterRetention(), ServeMetrics: mode.dev, Outbox: mode.dev && cfg.SMTPHost == "",
		BlobOrigin: cfg.blobOrigin(), Demo: mode.demo, EventsPostDelay: cfg.eventsPostDelay(),
		EventsFees: eventsPostConfig(cfg).Prices, TrackerHiResPerUser: cfg.TrackerHiResPerUser,
	}, web.Deps{
		NATS: b.nc, JS: b.js, ClickHouse: b.ch, Blobs: b.blobHandler, Gatherer: b.reg, Log: log,
		BlobStore: b.blobs, YouTube: yt, Payments: pay, Tokens: b.tokens, ABTests: ab,
		Salesforce: salesforce.New(salesforceConfig(cfg)), HubSpot: hubspot.New(hubspot.Config{BaseURL: cfg.HubSpotAPIBase}),
	})
	if err != nil {
		closePay()
		closeCRM()
		return nil, nil, fmt.Errorf("%w (has `jetfleet migrate` run?)", err)
	}
	return h, func() { closePay(); closeCRM() }, nil
}
