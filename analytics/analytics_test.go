package analytics_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"jetfleet/analytics"
	"jetfleet/internal/testenv"
)

func TestOpenCreatesMissingDatabase(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	name := fmt.Sprintf("fresh_%d", time.Now().UnixNano())
	conn, err := analytics.Open(ctx, analytics.Config{URL: ch.DSN(name)})
	if err != nil {
		t.Fatalf("open %s: %v", ch.DSN(name), err)
	}
	t.Cleanup(func() {
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
		conn.Close()
	})
	var got string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != name {
		t.Fatalf("current database = %q, want %q", got, name)
	}
	if dbs := column(t, conn, "SELECT name FROM system.databases WHERE name = ?", name); len(dbs) != 1 {
		t.Fatalf("database %s not in system.databases", name)
	}
}

func TestOpenRejectsEmptyURL(t *testing.T) {
	_, err := analytics.Open(t.Context(), analytics.Config{})
	if err == nil || !strings.Contains(err.Error(), "URL") {
		t.Fatalf("err = %v, want one naming the URL setting", err)
	}
}
