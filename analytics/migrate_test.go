package analytics_test

import (
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/analytics"
	"jetfleet/internal/testenv"
)

func recorded(t *testing.T, conn driver.Conn) []string {
	t.Helper()
	return column(t, conn, "SELECT name FROM schema_migrations ORDER BY name")
}

func TestMigrateAppliesFilesInOrderAndOnlyOnce(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, time.Minute)
	fsys := fstest.MapFS{
		// 0002 and 0003 fail unless 0001 ran before them.
		"0001_create.sql": {Data: []byte("CREATE TABLE a (id UInt64) ENGINE = MergeTree() ORDER BY id;\n")},
		"0002_alter.sql":  {Data: []byte("ALTER TABLE a ADD COLUMN name String;\n")},
		"0003_two.sql": {Data: []byte(`-- Two statements; a comment line ending in a semicolon;
CREATE TABLE b (
    id UInt64 -- the key
) ENGINE = MergeTree() ORDER BY id;

INSERT INTO a (id, name) SELECT 1, 'x; y';
`)},
		"README.md": {Data: []byte("not a migration")},
	}
	want := []string{"0001_create.sql", "0002_alter.sql", "0003_two.sql"}

	applied, err := analytics.Migrate(ctx, conn, fsys, nil)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	if !slices.Equal(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
	if got := recorded(t, conn); !slices.Equal(got, want) {
		t.Fatalf("schema_migrations holds %v, want %v", got, want)
	}
	if n := count(t, conn, "b"); n != 0 {
		t.Fatalf("table b has %d rows, want 0", n)
	}

	again, err := analytics.Migrate(ctx, conn, fsys, nil)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(again) != 0 {
		t.Fatalf("second run applied %v, want nothing", again)
	}
	if n := count(t, conn, "a"); n != 1 {
		t.Fatalf("table a has %d rows after two runs, want 1", n)
	}
}

func TestMigrateStopsAtBrokenFileAndNamesIt(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, time.Minute)
	fsys := fstest.MapFS{
		"0001_ok.sql":     {Data: []byte("CREATE TABLE a (id UInt64) ENGINE = MergeTree() ORDER BY id;\n")},
		"0002_broken.sql": {Data: []byte("CREATE TABLE b (id UInt64) ENGINE = NoSuchEngine;\n")},
		"0003_later.sql":  {Data: []byte("CREATE TABLE c (id UInt64) ENGINE = MergeTree() ORDER BY id;\n")},
	}

	applied, err := analytics.Migrate(ctx, conn, fsys, nil)
	if err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("err = %v, want one naming 0002_broken.sql", err)
	}
	if !slices.Equal(applied, []string{"0001_ok.sql"}) {
		t.Fatalf("applied %v, want [0001_ok.sql]", applied)
	}
	if got := recorded(t, conn); !slices.Equal(got, []string{"0001_ok.sql"}) {
		t.Fatalf("schema_migrations holds %v, want [0001_ok.sql]", got)
	}
	var exists uint8
	if err := conn.QueryRow(ctx, "EXISTS TABLE c").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists != 0 {
		t.Fatal("0003_later.sql ran after the broken file")
	}

	// Once fixed, the next run resumes at the broken file.
	fsys["0002_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE b (id UInt64) ENGINE = MergeTree() ORDER BY id;\n")}
	applied, err = analytics.Migrate(ctx, conn, fsys, nil)
	if err != nil {
		t.Fatalf("migrate after fix: %v", err)
	}
	if want := []string{"0002_broken.sql", "0003_later.sql"}; !slices.Equal(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
}

func TestSchemaAppliesOnFreshDatabase(t *testing.T) {
	conn, db := ch.Database(t)
	ctx := testenv.Context(t, time.Minute)
	applied, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	files, err := fs.Glob(analytics.Schema(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, files) {
		t.Fatalf("applied %v, want every shipped file in order %v", applied, files)
	}
	tables := column(t, conn, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", db)
	for _, want := range []string{"schema_migrations", "video_changes", "video_samples"} {
		if !slices.Contains(tables, want) {
			t.Fatalf("tables %v lack %s", tables, want)
		}
	}
}
