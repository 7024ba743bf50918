package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"jetfleet/analytics"
	"jetfleet/internal/jsmetrics"
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
	roles, err := roleNames(cfg.Roles, allRoles(cfg))
	if err != nil {
		return err
	}
	nc, js, err := connectNATS(cfg, "worker", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	reg := newRegistry()
	// Every worker exports the streams' and consumers' state; dashboards
	// take one value per stream (max by stream) whatever the worker count.
	reg.MustRegister(jsmetrics.New(js, log))
	tokens, err := tokenBox(cfg, false)
	if err != nil {
		return err
	}
	deps := consume.Deps{JS: js, Log: log, Tokens: tokens}
	if cfg.ClickHouseURL != "" {
		ch, err := openClickHouse(ctx, cfg.ClickHouseURL, false, log)
		if err != nil {
			return err
		}
		defer ch.Close()
		deps.ClickHouse = analytics.InstrumentInserts(ch, analytics.NewInsertMetrics(reg))
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
	if deps.Blobs, _, err = openBlobs(ctx, cfg, js, urlKey); err != nil {
		return err
	}

	metrics := consume.NewMetrics(reg)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(gctx, cfg.MetricsAddr, reg, log) })
	deps.Registerer = reg
	g.Go(func() error { return consume.RunRoles(gctx, roles, deps, metrics) })
	return g.Wait()
}

// serveMetrics serves /metrics and /healthz on addr (METRICS_ADDR), a
// listener of its own that the public site does not expose.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) error {
	mux := http.NewServeMux()
	// One failing collector must not blank every other metric.
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return serveHTTP(ctx, addr, mux, log, func(a net.Addr) { log.Info("metrics listening", "addr", a.String()) })
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
