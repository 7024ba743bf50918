// Package benchenv is the setup the benchmark commands share (each a main
// package beside the role it measures: workers/counter/counterbench,
// workers/tracker/trackerbench, workers/enricher/enricherbench): a temp
// dir, an embedded NATS server with JetStream and a local ClickHouse, both
// migrated and provisioned, and readings of a process's memory. Benchmarks
// print figures; nothing here asserts.
package benchenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/analytics/localserver"
	"jetfleet/internal/natsserver"
	"jetfleet/subjects"
)

// Env is one benchmark's world, all under Dir; Close stops it and removes Dir.
type Env struct {
	Dir        string
	NATS       *server.Server
	ClickHouse *localserver.Server
	CH         driver.Conn // migrated to analytics.Schema()
	NC         *nats.Conn
	JS         jetstream.JetStream // every subjects asset provisioned

	closers []func()
}

// Start builds the world of the benchmark called name: an embedded NATS
// server on loopback and a local ClickHouse in a new temp dir, the schema
// migrated and the JetStream assets provisioned. jsOpts tune the returned
// JetStream context (e.g. the async-publish window of a load generator).
func Start(ctx context.Context, name string, jsOpts ...jetstream.JetStreamOpt) (_ *Env, err error) {
	dir, err := os.MkdirTemp("", "jetfleet-"+name+"-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, closers: []func(){func() { os.RemoveAll(dir) }}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.NATS, err = natsserver.Start(natsserver.Config{Name: name, StoreDir: filepath.Join(dir, "nats"), Host: "127.0.0.1", Port: -1}); err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	e.closers = append(e.closers, e.NATS.Shutdown)
	if e.ClickHouse, err = localserver.Start(ctx, localserver.Config{Dir: filepath.Join(dir, "clickhouse")}); err != nil {
		return nil, fmt.Errorf("start clickhouse: %w", err)
	}
	e.closers = append(e.closers, func() { e.ClickHouse.Stop() })
	if e.CH, err = analytics.Open(ctx, analytics.Config{URL: e.ClickHouse.DSN()}); err != nil {
		return nil, fmt.Errorf("open clickhouse: %w", err)
	}
	e.closers = append(e.closers, func() { e.CH.Close() })
	if _, err = analytics.Migrate(ctx, e.CH, analytics.Schema(), nil); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if e.NC, err = nats.Connect(e.NATS.ClientURL()); err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	e.closers = append(e.closers, e.NC.Close)
	if e.JS, err = jetstream.New(e.NC, jsOpts...); err != nil {
		return nil, err
	}
	if err = subjects.Provision(ctx, e.JS, subjects.Options{}); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	return e, nil
}

// Close stops what Start started, last first, and removes the temp dir.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// ProcMemory reads a process's resident set size and its peak (VmHWM), in
// bytes, from /proc; zeros where it cannot.
func ProcMemory(pid int) (rss, hwm int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb * 1024
		case "VmHWM:":
			hwm = kb * 1024
		}
	}
	return rss, hwm
}

// MiB formats a byte count as whole mebibytes.
func MiB(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
