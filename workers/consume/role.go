package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"jetfleet/internal/blob"
	"jetfleet/internal/sealed"
	"jetfleet/workers/deadletter"
)

// Role is one kind of worker, declared once in its own package beside its
// handler (each workers/<role> package exports Roles). Scale a role by
// running more processes with it (jetfleet worker --roles name).
//
// A role is either a consumer — Consumer plus Build, run by the shared
// runtime — or a loop of its own — Run, for roles that pull in their own way
// (per-partition order, flush before ack).
type Role struct {
	Name     string
	Consumer Config
	Build    func(ctx context.Context, d Deps) (Handler, error)
	// Run, when set, replaces Consumer and Build.
	Run func(ctx context.Context, d Deps, m *Metrics) error
}

// Deps are the connections of a process that roles share; cmd builds them
// once. A role's own settings are not here: its package's Roles takes them.
type Deps struct {
	JS         jetstream.JetStream
	ClickHouse driver.Conn // nil when the process has no ClickHouse (CLICKHOUSE_URL unset)
	Blobs      blob.Store
	Log        *slog.Logger
	Registerer prometheus.Registerer // nil: role metrics beyond the runtime's are not exported
	Tokens     *sealed.Box           // TOKEN_KEY: OAuth and CRM tokens at rest
}

// RequireClickHouse returns the ClickHouse connection, or an error naming
// the setting for a role that cannot run without it.
func (d Deps) RequireClickHouse(role string) (driver.Conn, error) {
	if d.ClickHouse == nil {
		return nil, fmt.Errorf("CLICKHOUSE_URL: required by role %s", role)
	}
	return d.ClickHouse, nil
}

// CheckRoles refuses a list in which two roles share a name: a name is how
// an operator picks a role, so a second one would be unreachable or run
// twice.
func CheckRoles(roles []Role) error {
	seen := make(map[string]bool, len(roles))
	var errs []error
	for _, r := range roles {
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("worker role %q is declared twice", r.Name))
		}
		seen[r.Name] = true
	}
	return errors.Join(errs...)
}

// RunRoles runs every role until ctx ends and all have stopped.
func RunRoles(ctx context.Context, roles []Role, d Deps, m *Metrics) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, r := range roles {
		if r.Run != nil {
			g.Go(func() error { return r.Run(ctx, d, m) })
			continue
		}
		h, err := r.Build(ctx, d)
		if err != nil && ctx.Err() != nil {
			// Stopped while roles were still starting: a clean stop of
			// those already running, not a failure of this one.
			break
		}
		if err != nil {
			return fmt.Errorf("role %s: %w", r.Name, err)
		}
		c := New(d.JS, r.Consumer, h, m, d.Log)
		g.Go(func() error { return c.Run(ctx) })
	}
	return g.Wait()
}

// Roles are the roles of the runtime itself, serving every product.
// The DLQ sweeper is declared here rather than in workers/deadletter
// because that package sits below this one (the runtime writes the DLQ).
func Roles() []Role {
	return []Role{{
		// Dead-letters messages the server stopped redelivering because the
		// worker holding them died every time (see deadletter.Sweep).
		Name: "dlq-sweeper",
		Run: func(ctx context.Context, d Deps, _ *Metrics) error {
			return deadletter.Sweep(ctx, d.JS.Conn(), d.JS, d.Log.With("role", "dlq-sweeper"))
		},
	}}
}
