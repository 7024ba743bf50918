package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"jetfleet/workers/deadletter"
)

func runDLQ(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: jetfleet dlq ls|show|replay …")
	}
	verb, rest := args[0], args[1:]
	fs := flag.NewFlagSet("dlq "+verb, flag.ContinueOnError)
	stream := fs.String("stream", "", "only dead letters of this origin stream")
	limit := fs.Int("limit", 100, "ls: at most this many entries (0: all)")
	subject := fs.String("subject", "", "replay --all: only entries first published to this subject")
	all := fs.Bool("all", false, "replay: every matching entry")
	cfg, err := loadConfig(fs, rest, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	nc, js, err := connectNATS(cfg, "dlq", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	switch verb {
	case "ls":
		entries, err := deadletter.List(ctx, js, *stream, *limit)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tORIGIN\tCONSUMER\tDELIVERIES\tERROR")
		for _, e := range entries {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s/%s\t%d\t%s\n", e.Seq, e.Time.Format(time.DateTime), e.Origin, e.Stream, e.Consumer, e.Deliveries, oneLine(e.Error, 100))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d dead letter(s)\n", len(entries))
		return nil
	case "show":
		seq, err := seqArg(fs.Args())
		if err != nil {
			return err
		}
		e, err := deadletter.Get(ctx, js, seq)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seq:        %d\norigin:     %s (stream %s, sequence %d)\nconsumer:   %s\ndeliveries: %d\ntime:       %s\nerror:      %s\n",
			e.Seq, e.Origin, e.Stream, e.OriginSeq, e.Consumer, e.Deliveries, e.Time.Format(time.RFC3339), e.Error)
		keys := make([]string, 0, len(e.Header))
		for k := range e.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(stdout, "headers:")
		for _, k := range keys {
			fmt.Fprintf(stdout, "  %s: %s\n", k, strings.Join(e.Header.Values(k), ", "))
		}
		fmt.Fprintf(stdout, "payload (%d bytes):\n%s\n", len(e.Data), e.Data)
		return nil
	case "replay":
		if *all {
			n, err := deadletter.ReplayAll(ctx, js, *stream, *subject)
			fmt.Fprintf(stdout, "replayed %d dead letter(s)\n", n)
			return err
		}
		seq, err := seqArg(fs.Args())
		if err != nil {
			return fmt.Errorf("%w (or --all)", err)
		}
		if err := deadletter.Replay(ctx, js, seq); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replayed dead letter %d\n", seq)
		return nil
	}
	return fmt.Errorf("unknown dlq verb %q: use ls, show or replay", verb)
}

func seqArg(args []string) (uint64, error) {
	if len(args) != 1 {
		return 0, errors.New("give one DLQ sequence number (see `jetfleet dlq ls`)")
	}
	seq, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%q is not a DLQ sequence number", args[0])
	}
	return seq, nil
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}
