package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strings"

	"jetfleet/web"
)

func runEdge(ctx context.Context, args []string, getenv func(string) string) error {
	cfg, err := loadConfig(flag.NewFlagSet("edge", flag.ContinueOnError), args, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel).With("process", "edge")
	secret, err := requireSecret(cfg)
	if err != nil {
		return err
	}
	nc, js, err := connectNATS(cfg, "edge", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	ch, err := openClickHouse(ctx, cfg.ClickHouseURL, false, log)
	if err != nil {
		return err
	}
	defer ch.Close()
	blobs, blobHandler, err := openBlobs(ctx, cfg, js, secret)
	if err != nil {
		return err
	}
	reg := newRegistry()
	yt, err := newYouTube(cfg, reg)
	if err != nil {
		return err
	}
	pay, closePay, err := openPayments(cfg, false, log)
	if err != nil {
		return err
	}
	defer closePay()
	edge, err := web.New(ctx, web.Config{SessionSecret: secret, SecureCookies: strings.HasPrefix(cfg.BaseURL, "https:"), BaseURL: cfg.BaseURL, CounterRetention: cfg.counterRetention()},
		web.Deps{NATS: nc, JS: js, ClickHouse: ch, Blobs: blobHandler, Gatherer: reg, Log: log, BlobStore: blobs, YouTube: yt, Payments: pay})
	if err != nil {
		return fmt.Errorf("%w (has `jetfleet migrate` run?)", err)
	}
	return serveHTTP(ctx, cfg.HTTPAddr, edge, log, func(a net.Addr) { log.Info("edge listening", "addr", a.String()) })
}
