package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"jetfleet/subjects"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(flag.NewFlagSet("migrate", flag.ContinueOnError), args, getenv)
	if err != nil {
		return err
	}
	if err := cfg.refusePublishedDefaults(); err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel).With("process", "migrate")
	nc, js, err := connectNATS(cfg, "migrate", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := subjects.Provision(ctx, js, provisionOptions(cfg)); err != nil {
		return err
	}
	if err := indexCounterOwners(ctx, js, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "jetstream: %d streams, %d kv buckets, %d object stores, %d schedules provisioned (replicas %d)\n",
		len(subjects.Streams(provisionOptions(cfg))), len(subjects.KeyValues(provisionOptions(cfg))),
		len(subjects.ObjectStores(provisionOptions(cfg))), len(subjects.Schedules()), cfg.Replicas)
	ch, err := openClickHouse(ctx, cfg.ClickHouseURL, true, log)
	if err != nil {
		return err
	}
	defer ch.Close()
	fmt.Fprintln(stdout, "clickhouse: schema up to date")
	return nil
}
