package counter_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/analytics/counterdb"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) {
	// UTC+05:30: rollups, rebuilds and watermarks must not depend on the zone.
	testenv.ClickHouseMainWith(m, testenv.ClickHouseOptions{Timezone: testenv.NonUTCZone}, func(c *testenv.ClickHouse) { ch = c })
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// setup gives a provisioned JetStream and a migrated ClickHouse database.
func setup(t *testing.T) (*nats.Conn, jetstream.JetStream, driver.Conn) {
	t.Helper()
	nc, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	return nc, js, conn
}

// publish sends one batch of rows to their partition.
func publish(t *testing.T, js jetstream.JetStream, rows ...subjects.CounterRow) {
	t.Helper()
	byPart := map[int][]subjects.CounterRow{}
	for _, r := range rows {
		p := subjects.CounterPartition(r.VideoID)
		byPart[p] = append(byPart[p], r)
	}
	for p, rs := range byPart {
		data, _ := json.Marshal(subjects.CounterBatch{Rows: rs})
		if _, err := js.Publish(context.Background(), subjects.CounterSubject(p), data); err != nil {
			t.Fatal(err)
		}
	}
}

func totals(t *testing.T, conn driver.Conn, tenant, video string, typ subjects.CounterType) counterdb.Totals {
	t.Helper()
	tot, _, err := counterdb.Stats(context.Background(), conn, counterdb.Query{Tenant: tenant, VideoID: video, Type: typ,
		Start: time.Unix(0, 0), End: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tot
}

func minute(ago time.Duration) int64 { return time.Now().Add(-ago).Unix() / 60 * 60 }

// counterdbFlushJunk adds 1000 bogus views of v1 at minute m.
func counterdbFlushJunk(ctx context.Context, conn driver.Conn, m int64) error {
	return counterdb.Flush(ctx, conn, "", []counterdb.Row{{Tenant: "acme", VideoID: "v1", Type: subjects.CounterView,
		Minute: time.Unix(m, 0), Events: 1000, Total: 1000}}, nil)
}
