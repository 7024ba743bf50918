// Command jetfleet is the one binary of the fleet: `jetfleet dev` runs
// everything in one process, `edge` and `worker` run the scalable parts,
// `migrate`, `dlq` and `config` are for operators. main only wires: each
// subcommand is a function in its own file.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `jetfleet — NATS JetStream event-driven edge/worker fleet

Usage:
  jetfleet dev [flags]                 everything in one process (embedded NATS, local ClickHouse, edge, all workers)
  jetfleet edge [flags]                the HTTP/WebSocket edge
  jetfleet worker [--roles r1,r2]      worker roles (default: all)
  jetfleet migrate [flags]             apply ClickHouse migrations, provision JetStream assets, exit
  jetfleet dlq ls [--stream S]         list dead-lettered messages with their reason
  jetfleet dlq show SEQ                show one dead letter
  jetfleet dlq replay SEQ | --all [--stream S] [--subject SUBJ]
                                       publish dead letters back to their origin
  jetfleet enricher load FILE          load an NDJSON snapshot of users and subscriptions into the enricher's state
  jetfleet enricher key NAME           issue an API key for the enricher's HTTP ingest (shown once)
  jetfleet enricher where UUID         the partition and state shard of a user (buckets and keys to look at)
  jetfleet users premium [--off] EMAIL  lift (or restore) a user's free-plan limits
  jetfleet users operator [--off] EMAIL let a user see every product's operator figures (or stop)
  jetfleet users show EMAIL            one user's account
  jetfleet counter apikey create --tenant T | rebuild --since T
                                       Counter API keys, rollup rebuild
  jetfleet config [flags]              print the effective configuration, secrets masked
  jetfleet health URL                  exit 0 when URL answers 200 (container healthchecks)

Every flag can also be set by environment variable; see 'jetfleet config -h'.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "jetfleet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDev(ctx, rest, getenv, stdout)
	case "edge":
		return runEdge(ctx, rest, getenv)
	case "worker":
		return runWorker(ctx, rest, getenv)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout)
	case "dlq":
		return runDLQ(ctx, rest, getenv, stdout)
	case "config":
		return runConfig(rest, getenv, stdout)
	case "users":
		return runUsers(ctx, rest, getenv, stdout)
	case "enricher":
		return runEnricher(ctx, rest, getenv, stdout)
	case "counter":
		return runCounter(ctx, rest, getenv, stdout)
	case "health":
		return runHealth(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
}
