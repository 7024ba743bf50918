// Package analytics is jetfleet's connection to ClickHouse, where every
// product's figures live: the Tracker's time series (video samples and
// title/thumbnail changes), the Counter API's rollups, the Enricher's lesson
// counts. It opens connections (creating the database on a fresh server),
// applies the embedded schema migrations (migrations/, one numbered file a
// change, for every product), and batches inserts with BatchWriter.
//
// A product's queries live in one file here named for it (tracker.go,
// enricher.go), except the Counter API's: analytics/counterdb is a package
// of its own because it is that product's whole storage layer (a replay-safe
// write path with partition watermarks, and its reads), with names of its
// own (Row, Query, Flush, Stats) that would need a Counter prefix here.
//
// It speaks the native protocol through clickhouse-go/v2. All SQL here runs
// on ClickHouse 18.16 (the Debian package used for development and tests) as
// well as on current releases; see FACTS.md for what 18.16 lacks.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Config configures the ClickHouse connection.
type Config struct {
	// URL is a native-protocol DSN:
	// clickhouse://user:pass@host:port/database?options (CLICKHOUSE_URL).
	// An empty database means "default".
	URL string
}

// codeUnknownDatabase is ClickHouse's UNKNOWN_DATABASE error code.
const codeUnknownDatabase = 81

// Open connects to ClickHouse and pings it. If the URL's database does not
// exist yet, Open creates it first (connecting to "default" to do so), so a
// fresh server works without manual setup.
func Open(ctx context.Context, cfg Config) (driver.Conn, error) {
	if cfg.URL == "" {
		return nil, errors.New("analytics config: URL is empty (set CLICKHOUSE_URL)")
	}
	opts, err := clickhouse.ParseDSN(cfg.URL)
	if err != nil {
		// ParseDSN redacts the password from its errors.
		return nil, fmt.Errorf("analytics config: URL: %w", err)
	}
	if opts.Auth.Database == "" {
		opts.Auth.Database = "default"
	}
	conn, err := connect(ctx, opts)
	var exc *clickhouse.Exception
	if err == nil || !errors.As(err, &exc) || exc.Code != codeUnknownDatabase {
		return conn, err
	}

	db := opts.Auth.Database
	admin := *opts
	admin.Auth.Database = "default"
	adminConn, err := connect(ctx, &admin)
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", db, err)
	}
	err = adminConn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db))
	adminConn.Close()
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", db, err)
	}
	return connect(ctx, opts)
}

func connect(ctx context.Context, opts *clickhouse.Options) (driver.Conn, error) {
	addr := strings.Join(opts.Addr, ",")
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping clickhouse %s database %s: %w", addr, opts.Auth.Database, err)
	}
	return conn, nil
}

// quoteIdent quotes a database, table or column name for use in SQL.
func quoteIdent(name string) string {
	r := strings.NewReplacer(`\`, `\\`, "`", "\\`")
	return "`" + r.Replace(name) + "`"
}
