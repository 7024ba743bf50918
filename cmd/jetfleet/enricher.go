package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/enricherkeys"
	"jetfleet/workers/enricher"
)

const enricherUsage = `usage:
  jetfleet enricher load FILE              load an NDJSON state snapshot (users and subscriptions) into the state buckets
  jetfleet enricher key [--rate N] NAME    issue an API key for the HTTP ingest (shown once)`

// runEnricher runs the enricher's operator verbs.
func runEnricher(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "key" {
		return runEnricherKey(ctx, args[1:], getenv, stdout)
	}
	if len(args) == 0 || args[0] != "load" {
		return errors.New(enricherUsage)
	}
	fs := flag.NewFlagSet("enricher load", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args[1:], getenv)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New(enricherUsage)
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("enricher load: %w", err)
	}
	defer f.Close()
	log := newLogger(cfg.LogLevel).With("process", "enricher-load")
	nc, js, err := connectNATS(cfg, "enricher-load", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	start := time.Now()
	st, err := enricher.Load(ctx, js, f)
	for _, le := range st.Rejected {
		fmt.Fprintf(stdout, "line %d: %s\n", le.Line, le.Reason)
	}
	if st.RejectedTotal > len(st.Rejected) {
		fmt.Fprintf(stdout, "… and %d more rejected lines\n", st.RejectedTotal-len(st.Rejected))
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "loaded %d users and %d subscriptions in %v (%.0f rows/s), %d lines rejected\n",
		st.Users, st.Subscriptions, el.Round(time.Millisecond), float64(st.Users+st.Subscriptions)/el.Seconds(), st.RejectedTotal)
	return err
}

func runEnricherKey(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("enricher key", flag.ContinueOnError)
	rateLimit := fs.Float64("rate", 0, "events per second this key may send (0: the ingest default)")
	owner := fs.String("user", "", "email of the account the key belongs to (its GDPR export lists it, its deletion removes it)")
	cfg, err := loadConfig(fs, args, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New(enricherUsage)
	}
	log := newLogger(cfg.LogLevel).With("process", "enricher-key")
	nc, js, err := connectNATS(cfg, "enricher-key", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	keys, err := enricherkeys.Open(ctx, js)
	if err != nil {
		return err
	}
	uid := ""
	if *owner != "" {
		users, err := accounts.Open(ctx, js, accounts.Config{})
		if err != nil {
			return err
		}
		u, err := users.UserByEmail(ctx, *owner)
		if err != nil {
			return fmt.Errorf("enricher key: --user %s: %w", *owner, err)
		}
		uid = u.ID
	}
	key, err := keys.IssueFor(ctx, uid, fs.Arg(0), *rateLimit)
	if err != nil {
		return fmt.Errorf("enricher key: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n(shown once; send it as X-API-Key to POST /api/enricher/v1/events/{user|subscription|lesson})\n", key)
	return nil
}
