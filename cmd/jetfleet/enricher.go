package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/apikeys"
	"jetfleet/subjects"
	"jetfleet/workers/enricher"
)

const enricherUsage = `usage:
  jetfleet enricher load FILE              load an NDJSON state snapshot (users and subscriptions) into the state buckets
  jetfleet enricher key [--rate N] NAME    issue an API key for the HTTP ingest (shown once)
  jetfleet enricher where UUID             the partition and state shard (buckets, keys) of a user`

// runEnricher runs the enricher's operator verbs.
func runEnricher(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "key" {
		return runEnricherKey(ctx, args[1:], getenv, stdout)
	}
	if len(args) > 0 && args[0] == "where" {
		return runEnricherWhere(ctx, args[1:], getenv, stdout)
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
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	pr := newLoadProgress(size, os.Stderr, log)
	st, err := enricher.Load(ctx, js, f, pr.update)
	pr.done()
	for _, le := range st.Rejected {
		fmt.Fprintf(stdout, "line %d: %s\n", le.Line, le.Reason)
	}
	if st.RejectedTotal > len(st.Rejected) {
		fmt.Fprintf(stdout, "… and %d more rejected lines\n", st.RejectedTotal-len(st.Rejected))
	}
	el := time.Since(pr.start)
	fmt.Fprintf(stdout, "loaded %d users and %d subscriptions from %d lines in %v (%.0f rows/s), %d lines rejected\n",
		st.Users, st.Subscriptions, st.Lines, el.Round(time.Millisecond), float64(st.Users+st.Subscriptions)/el.Seconds(), st.RejectedTotal)
	return err
}

// loadProgress shows a running load: a line rewritten in place when stderr
// is a terminal, else a log line every few seconds.
type loadProgress struct {
	size  int64 // of the file, 0 when unknown
	start time.Time
	last  time.Time
	term  io.Writer // nil when not a terminal
	log   *slog.Logger
	every time.Duration
	shown bool
}

func newLoadProgress(size int64, stderr *os.File, log *slog.Logger) *loadProgress {
	p := &loadProgress{size: size, start: time.Now(), log: log, every: 5 * time.Second}
	if fi, err := stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		p.term, p.every = stderr, 250*time.Millisecond
	}
	p.last = p.start
	return p
}

// update is enricher.Load's progress callback (called for every line).
func (p *loadProgress) update(st enricher.LoadStats) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	rows, rate, left := loadFigures(st, p.size, now.Sub(p.start))
	if p.term != nil {
		fmt.Fprintf(p.term, "\r%-78s", progressLine(rows, rate, left, st.RejectedTotal))
		p.shown = true
		return
	}
	attrs := []any{"rows", rows, "rows_per_s", int(rate), "rejected_lines", st.RejectedTotal}
	if left >= 0 {
		attrs = append(attrs, "left", left.Round(time.Second))
	}
	p.log.Info("enricher load progress", attrs...)
}

// done ends the progress line so the summary starts on its own.
func (p *loadProgress) done() {
	if p.shown {
		fmt.Fprintln(p.term)
	}
}

// loadFigures are the rows written, their rate and the time left (from the
// share of the file read; -1 when the size is unknown).
func loadFigures(st enricher.LoadStats, size int64, elapsed time.Duration) (rows int, rate float64, left time.Duration) {
	rows = st.Users + st.Subscriptions
	if elapsed > 0 {
		rate = float64(rows) / elapsed.Seconds()
	}
	left = -1
	if size > 0 && st.Bytes > 0 {
		left = time.Duration(float64(elapsed) * float64(size-st.Bytes) / float64(st.Bytes))
	}
	return rows, rate, left
}

func progressLine(rows int, rate float64, left time.Duration, rejected int) string {
	s := fmt.Sprintf("%d rows, %.0f rows/s", rows, rate)
	if left >= 0 {
		s += fmt.Sprintf(", %v left", left.Round(time.Second))
	}
	if rejected > 0 {
		s += fmt.Sprintf(", %d lines rejected", rejected)
	}
	return s
}

// runEnricherWhere prints where a user's events and state live, with the
// shard count the workers use (recorded on INPUT at provisioning).
func runEnricherWhere(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("enricher where", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return errors.New(enricherUsage)
	}
	uuid := fs.Arg(0)
	log := newLogger(cfg.LogLevel).With("process", "enricher-where")
	nc, js, err := connectNATS(cfg, "enricher-where", log)
	if err != nil {
		return err
	}
	defer nc.Drain()
	shards, err := subjects.EnricherShards(ctx, js)
	if err != nil {
		return err
	}
	p, sh := subjects.EnricherPartitionOf(uuid), subjects.EnricherShardOf(uuid, shards)
	fmt.Fprintf(stdout, "user:          %s\n", uuid)
	fmt.Fprintf(stdout, "partition:     %d of %d (stream %s, stored as %s, consumer %s)\n", p, subjects.EnricherPartitions,
		subjects.EnricherPartitionStream(p), subjects.EnricherPartitionFilter(p), subjects.EnricherPartitionConsumer(p))
	fmt.Fprintf(stdout, "state shard:   %d of %d\n", sh, shards)
	fmt.Fprintf(stdout, "user state:    nats kv get %s %s\n", subjects.EnricherUsersBucket(sh), uuid)
	fmt.Fprintf(stdout, "subscription:  nats kv get %s %s\n", subjects.EnricherSubsBucket(sh), subjects.EnricherSubKey(uuid, "<language>"))
	return nil
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
	keys, err := apikeys.OpenEnricher(ctx, js)
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
	key, _, err := keys.Issue(ctx, apikeys.NewKey{Owner: uid, Name: fs.Arg(0), RateLimit: *rateLimit})
	if err != nil {
		return fmt.Errorf("enricher key: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n(shown once; send it as X-API-Key to POST /api/enricher/v1/events/{user|subscription|lesson})\n", key)
	return nil
}
