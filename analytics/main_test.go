package analytics_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/internal/testenv"
)

// ch is the package's ClickHouse server; each test takes its own database.
var ch *testenv.ClickHouse

func TestMain(m *testing.M) {
	// UTC+05:30: the tracker and enricher queries must bucket in UTC anyway.
	testenv.ClickHouseMainWith(m, testenv.ClickHouseOptions{Timezone: testenv.NonUTCZone}, func(c *testenv.ClickHouse) { ch = c })
}

// count returns the number of rows query's table holds, e.g. "t" or
// "video_samples FINAL".
func count(t testing.TB, conn driver.Conn, from string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), fmt.Sprintf("SELECT count() FROM %s", from)).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", from, err)
	}
	return n
}

// column returns the single String column of query's rows.
func column(t testing.TB, conn driver.Conn, query string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}
