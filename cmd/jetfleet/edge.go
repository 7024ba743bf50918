package main

import (
	"context"
	"flag"
	"net"

	"golang.org/x/sync/errgroup"

	"jetfleet/analytics"
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
	tokens, err := tokenBox(cfg, false)
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
	edge, closeSite, err := buildSite(ctx, cfg, backbone{nc: nc, js: js, ch: ch, blobs: blobs, blobHandler: blobHandler, reg: reg, tokens: tokens}, keys.CSRF, edgeMode{}, log)
	if err != nil {
		return err
	}
	defer closeSite()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(gctx, cfg.MetricsAddr, reg, log) })
	g.Go(func() error {
		return serveHTTP(gctx, cfg.HTTPAddr, edge, log, func(a net.Addr) { log.Info("edge listening", "addr", a.String()) })
	})
	return g.Wait()
}
