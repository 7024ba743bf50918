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

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/apikeys"
	"jetfleet/workers/counter"
)

const counterUsage = `usage:
  jetfleet counter apikey create --tenant T [--name N] [--rate EVENTS_PER_S]
                                 issue an API key (printed once; only its hash is stored)
  jetfleet counter rebuild --since TIME
                                 recompute rollups from the raw events kept in VIEWS
                                 (stop the counter workers first; TIME is RFC 3339 or a duration like 24h)`

func runCounter(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(counterUsage)
	}
	switch args[0] {
	case "apikey":
		if len(args) < 2 || args[1] != "create" {
			return errors.New(counterUsage)
		}
		return runCounterKey(ctx, args[2:], getenv, stdout)
	case "rebuild":
		return runCounterRebuild(ctx, args[1:], getenv, stdout)
	}
	return fmt.Errorf("unknown counter verb %q\n%s", args[0], counterUsage)
}

func runCounterKey(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("counter apikey create", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "tenant the key counts and reads for (required)")
	name := fs.String("name", "", "a label to recognise the key")
	rate := fs.Float64("rate", 0, "events per second allowed to this key (0: the edge default, 200000)")
	readRate := fs.Float64("read-rate", 0, "reads per second allowed to this key, shared by all edges (0: the edge default, 100)")
	cfg, err := loadConfig(fs, args, getenv)
	if err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("--tenant: required")
	}
	nc, js, err := connectNATS(cfg, "counter-apikey", newLogger(cfg.LogLevel))
	if err != nil {
		return err
	}
	defer nc.Close()
	keys, err := apikeys.OpenCounter(ctx, js)
	if err != nil {
		return fmt.Errorf("%w (has `jetfleet migrate` run?)", err)
	}
	key, rec, err := keys.Issue(ctx, apikeys.NewKey{Tenant: *tenant, Name: *name, RateLimit: *rate, ReadLimit: *readRate})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "API key for tenant %s (shown once, keep it secret):\n%s\n", rec.Tenant, key)
	return nil
}

func runCounterRebuild(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("counter rebuild", flag.ContinueOnError)
	sinceFlag := fs.String("since", "", "first hour to rebuild: RFC 3339 time or a duration ago, e.g. 24h (required)")
	cfg, err := loadConfig(fs, args, getenv)
	if err != nil {
		return err
	}
	since, err := parseSince(*sinceFlag, time.Now())
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	log := newLogger(cfg.LogLevel).With("process", "counter-rebuild")
	nc, js, err := connectNATS(cfg, "counter-rebuild", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	ch, err := openClickHouse(ctx, cfg.ClickHouseURL, false, log)
	if err != nil {
		return err
	}
	defer ch.Close()
	meter := &rebuildMeter{out: stdout, tty: isTerminal(stdout), log: log, now: time.Now, every: 5 * time.Second}
	rep, err := counter.Rebuild(ctx, js, ch, since, log, meter.update)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilt rollups since %s in %v: %d raw batches read, %d rollup rows, %d events\n",
		rep.Since.Format(time.RFC3339), rep.Took.Round(time.Millisecond), rep.Messages, rep.Rows, rep.Events)
	return nil
}

// rebuildMeter shows a rebuild's progress: on a terminal one line per phase,
// rewritten in place; otherwise (a log file, CI) a log line every `every`
// and one when a phase ends, so a long rebuild is never silent.
type rebuildMeter struct {
	out   io.Writer
	tty   bool
	log   *slog.Logger
	now   func() time.Time
	every time.Duration

	phase string
	last  time.Time
	ended map[string]bool
}

// ttyRedraw limits redraws of the terminal line.
const ttyRedraw = 200 * time.Millisecond

func (m *rebuildMeter) update(p counter.RebuildProgress) {
	now := m.now()
	if m.ended == nil {
		m.ended = map[string]bool{}
	}
	if m.ended[p.Phase] {
		return
	}
	end := p.Done >= p.Total
	if p.Phase != m.phase {
		m.phase, m.last = p.Phase, time.Time{}
	}
	gap := m.every
	if m.tty {
		gap = ttyRedraw
	}
	if !end && !m.last.IsZero() && now.Sub(m.last) < gap {
		return
	}
	if m.last.IsZero() && !end && !m.tty {
		// Off a terminal the first line comes after `every`, like the rest.
		m.last = now
		return
	}
	m.last = now
	m.ended[p.Phase] = end
	what := map[string]string{counter.RebuildRead: "raw batches read", counter.RebuildWrite: "rollup rows written"}[p.Phase]
	left := "done"
	if !end {
		left = p.Left().Round(time.Second).String() + " left"
	}
	if m.tty {
		fmt.Fprintf(m.out, "\r%s: %d of %d, %.0f/s, %s   ", what, p.Done, p.Total, p.Rate(), left)
		if end {
			fmt.Fprintln(m.out)
		}
		return
	}
	m.log.Info("counter rebuild progress", "phase", p.Phase, "done", p.Done, "total", p.Total,
		"per_second", int64(p.Rate()), "left", p.Left().Round(time.Second))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("required (e.g. 24h or 2026-01-02T15:00:00Z)")
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (24h) nor RFC 3339", s)
	}
	return t, nil
}

// indexCounterOwners gives the Counter API keys people created before the
// owner index existed their index slots (a scan of the keys bucket: run at
// migrate, not per request).
func indexCounterOwners(ctx context.Context, js jetstream.JetStream, stdout io.Writer) error {
	keys, err := apikeys.OpenCounter(ctx, js)
	if err != nil {
		return err
	}
	n, err := keys.IndexOwners(ctx)
	if err != nil {
		return fmt.Errorf("index counter api keys by owner: %w", err)
	}
	if n > 0 {
		fmt.Fprintf(stdout, "counter: %d api keys indexed by owner\n", n)
	}
	return nil
}
