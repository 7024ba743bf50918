package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/analytics/localserver"
)

// ClickHouse is a local ClickHouse server shared by one test package: start it
// in TestMain (see ClickHouseMain) and give each test its own database with
// Database.
type ClickHouse struct {
	server  *localserver.Server
	admin   driver.Conn // on the default database; creates and drops test databases
	tempDir string      // removed by Stop when StartClickHouse created it
	seq     atomic.Int64
}

// ClickHouseOptions choose how a test server is started.
type ClickHouseOptions struct {
	// Dir holds the server's files; empty means a new temporary directory
	// (removed by Stop).
	Dir string
	// Timezone is the server's time zone (IANA name); empty keeps the
	// machine's. Packages whose queries bucket time run their tests in a
	// non-UTC, non-whole-hour zone (NonUTCZone) to prove the bucketing is
	// UTC whatever the server's zone.
	Timezone string
}

// NonUTCZone is UTC+05:30 all year: an hour bucket computed in the server's
// zone instead of UTC is off by half an hour, a day bucket by 5.5 hours.
const NonUTCZone = "Asia/Kolkata"

// StartClickHouse starts a server on free loopback ports with its files in
// dir, or in a new temporary directory (removed by Stop) when dir is empty.
func StartClickHouse(dir string) (*ClickHouse, error) {
	return StartClickHouseWith(ClickHouseOptions{Dir: dir})
}

// StartClickHouseWith starts a server as opts say.
func StartClickHouseWith(opts ClickHouseOptions) (*ClickHouse, error) {
	c := &ClickHouse{}
	dir := opts.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "jetfleet-clickhouse-")
		if err != nil {
			return nil, fmt.Errorf("start clickhouse: %w", err)
		}
		dir, c.tempDir = tmp, tmp
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := localserver.Start(ctx, localserver.Config{Dir: dir, Timezone: opts.Timezone})
	if err != nil {
		c.removeTemp()
		return nil, fmt.Errorf("start clickhouse: %w", err)
	}
	c.server = srv
	if c.admin, err = c.open(ctx, "default"); err != nil {
		srv.Stop()
		c.removeTemp()
		return nil, fmt.Errorf("start clickhouse: %w", err)
	}
	return c, nil
}

// ClickHouseMain is a whole TestMain for a package whose tests need
// ClickHouse: it starts the server, hands it to use (which stores it for the
// tests), runs the tests, stops the server and exits. If the server cannot
// start, it prints why and exits with status 1; tests are never skipped.
//
//	var ch *testenv.ClickHouse
//
//	func TestMain(m *testing.M) { testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c }) }
func ClickHouseMain(m *testing.M, use func(*ClickHouse)) {
	ClickHouseMainWith(m, ClickHouseOptions{}, use)
}

// ClickHouseMainWith is ClickHouseMain with a server started as opts say.
func ClickHouseMainWith(m *testing.M, opts ClickHouseOptions, use func(*ClickHouse)) {
	c, err := StartClickHouseWith(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		os.Exit(1)
	}
	use(c)
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
	}
	os.Exit(code)
}

// Server is the underlying local server.
func (c *ClickHouse) Server() *localserver.Server { return c.server }

// DSN returns the URL of database db, for analytics.Open.
func (c *ClickHouse) DSN(db string) string { return c.server.DatabaseDSN(db) }

// Database creates a database for this test alone and returns a connection
// to it and its name. When the test ends, the connection is closed and the
// database dropped.
func (c *ClickHouse) Database(t testing.TB) (driver.Conn, string) {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", c.seq.Add(1), identPart(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create clickhouse database %s: %v", name, err)
	}
	conn, err := c.open(ctx, name)
	if err != nil {
		t.Fatalf("connect to clickhouse database %s: %v", name, err)
	}
	t.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop clickhouse database %s: %v", name, err)
		}
	})
	return conn, name
}

// Stop stops the server and removes its temporary directory.
func (c *ClickHouse) Stop() error {
	c.admin.Close()
	err := c.server.Stop()
	c.removeTemp()
	return err
}

func (c *ClickHouse) open(ctx context.Context, db string) (driver.Conn, error) {
	opts, err := clickhouse.ParseDSN(c.DSN(db))
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, err
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping %s: %w", c.DSN(db), err)
	}
	return conn, nil
}

func (c *ClickHouse) removeTemp() {
	if c.tempDir != "" {
		os.RemoveAll(c.tempDir)
	}
}

// identPart turns a test name into a short lower-case identifier fragment,
// so a leftover database tells which test made it.
func identPart(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}
