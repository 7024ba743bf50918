package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"jetfleet/internal/blob"
	"jetfleet/workers/consume"
)

// roleDeps are what role constructors may use.
type roleDeps struct {
	cfg   *config
	js    jetstream.JetStream
	ch    driver.Conn // nil when CLICKHOUSE_URL is not set for a worker
	blobs blob.Store
	log   *slog.Logger
	reg   prometheus.Registerer // nil: role metrics beyond consume's are not exported
}

// clickhouse returns the ClickHouse connection or an error naming the setting
// for a role that needs it.
func (d roleDeps) clickhouse(role string) (driver.Conn, error) {
	if d.ch == nil {
		return nil, fmt.Errorf("CLICKHOUSE_URL: required by role %s", role)
	}
	return d.ch, nil
}

// role is one kind of worker: the consumer it runs and how to build its
// handler. Scale a role by running more processes with it.
type role struct {
	name     string
	consumer consume.Config
	build    func(ctx context.Context, d roleDeps) (consume.Handler, error)
	// run, when set, replaces consumer and build: the role runs its own
	// loop (e.g. consume.OrderedConsumer for per-partition order).
	run func(ctx context.Context, d roleDeps, m *consume.Metrics) error
}

// roleNames resolves WORKER_ROLES ("all" or a comma-separated list).
func roleNames(spec string, known []role) ([]role, error) {
	if strings.TrimSpace(spec) == "all" {
		return known, nil
	}
	var names []string
	for _, r := range known {
		names = append(names, r.name)
	}
	var out []role
	for _, n := range strings.Split(spec, ",") {
		n = strings.TrimSpace(n)
		i := slices.Index(names, n)
		if i < 0 {
			return nil, fmt.Errorf("WORKER_ROLES: unknown role %q (known: all, %s)", n, strings.Join(names, ", "))
		}
		out = append(out, known[i])
	}
	return out, nil
}

// runRoles runs every role's consumer until ctx ends and all have stopped.
func runRoles(ctx context.Context, roles []role, d roleDeps, metrics *consume.Metrics) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, r := range roles {
		if r.run != nil {
			g.Go(func() error { return r.run(ctx, d, metrics) })
			continue
		}
		h, err := r.build(ctx, d)
		if err != nil {
			return fmt.Errorf("role %s: %w", r.name, err)
		}
		c := consume.New(d.js, r.consumer, h, metrics, d.log)
		g.Go(func() error { return c.Run(ctx) })
	}
	return g.Wait()
}
