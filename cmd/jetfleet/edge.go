package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strings"

	"golang.org/x/sync/errgroup"

	"jetfleet/analytics"
	"jetfleet/web"
)

func runEdge(ctx context.Context, args []string, getenv func(string) string) error {
	cfg, err := loadConfig(flag.NewFlagSet("edge", flag.ContinueOnError), args, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel).With("process", "edge")
	if err := cfg.refusePublishedDefaults(); err != nil {
		return err
	}
	secret, err := requireSecret(cfg)
	if err != nil {
		return err
	}
	keys, err := deriveSiteKeys(secret)
	if err != nil {
		return err
	}
	nc, js, err := connectNATS(cfg, "edge", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	reg := newRegistry()
	ch, err := openClickHouse(ctx, cfg.ClickHouseURL, false, log)
	if err != nil {
		return err
	}
	defer ch.Close()
	ch = analytics.InstrumentInserts(ch, analytics.NewInsertMetrics(reg))
	blobs, blobHandler, err := openBlobs(ctx, cfg, js, keys.BlobURL)
	if err != nil {
		return err
	}
	yt, err := newYouTube(cfg, reg)
	if err != nil {
		return err
	}
	pay, closePay, err := openPayments(cfg, false, log)
	if err != nil {
		return err
	}
	defer closePay()
	edge, err := web.New(ctx, web.Config{SessionSecret: keys.CSRF, SecureCookies: strings.HasPrefix(cfg.BaseURL, "https:"), BaseURL: cfg.BaseURL, CounterRetention: cfg.counterRetention(), BlobOrigin: cfg.blobOrigin()},
		web.Deps{NATS: nc, JS: js, ClickHouse: ch, Blobs: blobHandler, Gatherer: reg, Log: log, BlobStore: blobs, YouTube: yt, Payments: pay})
	if err != nil {
		return fmt.Errorf("%w (has `jetfleet migrate` run?)", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(gctx, cfg.MetricsAddr, reg, log) })
	g.Go(func() error {
		return serveHTTP(gctx, cfg.HTTPAddr, edge, log, func(a net.Addr) { log.Info("edge listening", "addr", a.String()) })
	})
	return g.Wait()
}
