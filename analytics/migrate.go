package analytics

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Schema returns jetfleet's ClickHouse migrations, for Migrate.
func Schema() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // unreachable: the directory is embedded
	}
	return sub
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    name       String,
    applied_at DateTime
) ENGINE = MergeTree() ORDER BY name`

// Migrate applies the *.sql files at the root of fsys that the connection's
// database has not recorded yet, in name order (so name them
// NNNN_what.sql), and returns the names it applied. A file may hold several
// statements, each ended by a ";" at the end of a line (also inside a
// trailing comment: keep ";" off the end of comments); whole-line "--"
// comments are dropped. Each applied file is recorded in schema_migrations,
// so running Migrate again applies nothing.
//
// ClickHouse has no transactions: Migrate stops at the first failing
// statement and names its file, whose earlier statements stay applied while
// the file stays unrecorded. Write statements that can run twice (CREATE
// TABLE IF NOT EXISTS, …). Run Migrate from one process at a time.
//
// Seed data with INSERT … SELECT: over the native protocol ClickHouse 18.16
// waits for a data block after INSERT … VALUES sent as a statement, so such a
// statement hangs until ctx ends.
func Migrate(ctx context.Context, conn driver.Conn, fsys fs.FS, logger *slog.Logger) (applied []string, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	slices.Sort(names)
	if err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	done, err := appliedMigrations(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if done[name] {
			continue
		}
		start := time.Now()
		if err := applyMigration(ctx, conn, fsys, name); err != nil {
			return applied, fmt.Errorf("apply migration %s: %w", name, err)
		}
		applied = append(applied, name)
		logger.Info("applied clickhouse migration", "name", name, "duration", time.Since(start).Round(time.Millisecond))
	}
	return applied, nil
}

func appliedMigrations(ctx context.Context, conn driver.Conn) (map[string]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT name FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	done := make(map[string]bool)
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		done[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return done, nil
}

func applyMigration(ctx context.Context, conn driver.Conn, fsys fs.FS, name string) error {
	src, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err
	}
	stmts := splitStatements(string(src))
	for i, stmt := range stmts {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("statement %d of %d: %w", i+1, len(stmts), err)
		}
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (name, applied_at)")
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := batch.Append(name, time.Now()); err != nil {
		batch.Abort()
		return fmt.Errorf("record: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// splitStatements drops whole-line "--" comments and splits the rest into
// statements at lines ending with ";". Blank statements are skipped: the
// server rejects an empty query.
func splitStatements(src string) []string {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for line := range strings.Lines(src) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		if strings.HasSuffix(trimmed, ";") {
			cur.WriteString(strings.TrimSuffix(trimmed, ";"))
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return stmts
}
