package main

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"jetfleet/workers/consume"
)

func runWorker(ctx context.Context, args []string, getenv func(string) string) error {
	cfg, err := loadConfig(flag.NewFlagSet("worker", flag.ContinueOnError), args, getenv)
	if err != nil {
		return err
	}
	if err := cfg.refusePublishedDefaults(); err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel).With("process", "worker")
	roles, err := roleNames(cfg.Roles, allRoles())
	if err != nil {
		return err
	}
	nc, js, err := connectNATS(cfg, "worker", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	deps := roleDeps{cfg: cfg, js: js, log: log}
	if cfg.ClickHouseURL != "" {
		ch, err := openClickHouse(ctx, cfg.ClickHouseURL, false, log)
		if err != nil {
			return err
		}
		defer ch.Close()
		deps.ch = ch
	}
	secret := []byte(cfg.SessionSecret)
	if len(secret) == 0 && cfg.S3Endpoint == "" {
		return errors.New("SESSION_SECRET: required to sign blob URLs when blobs live in the JetStream object store (no S3_ENDPOINT)")
	}
	var urlKey []byte
	if len(secret) > 0 {
		keys, err := deriveSiteKeys(secret)
		if err != nil {
			return err
		}
		urlKey = keys.BlobURL
	}
	if deps.blobs, _, err = openBlobs(ctx, cfg, js, urlKey); err != nil {
		return err
	}

	reg := newRegistry()
	metrics := consume.NewMetrics(reg)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return serveHTTP(gctx, cfg.MetricsAddr, mux, log, func(a net.Addr) { log.Info("metrics listening", "addr", a.String()) })
	})
	deps.reg = reg
	g.Go(func() error { return runRoles(gctx, roles, deps, metrics) })
	return g.Wait()
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
