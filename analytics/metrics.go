package analytics

import (
	"context"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
)

// InsertMetrics count what a process inserts into ClickHouse, per table: the
// rows the server accepted, the INSERTs that failed and how long each took.
// They wrap the connection (InstrumentInserts), so every writer — the batch
// writer, the Counter's rollups, migrations — is counted without knowing.
type InsertMetrics struct {
	rows    *prometheus.CounterVec
	errors  *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

// NewInsertMetrics registers the insert metrics with reg.
func NewInsertMetrics(reg prometheus.Registerer) *InsertMetrics {
	m := &InsertMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_clickhouse_inserted_rows_total",
			Help: "Rows ClickHouse accepted, per table.",
		}, []string{"table"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_clickhouse_insert_errors_total",
			Help: "INSERTs that failed (each is retried by its writer), per table.",
		}, []string{"table"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetfleet_clickhouse_insert_seconds",
			Help:    "Time from preparing an INSERT to the server's answer, per table.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2.5, 10),
		}, []string{"table"}),
	}
	reg.MustRegister(m.rows, m.errors, m.seconds)
	return m
}

// InstrumentInserts returns conn with every batch INSERT counted in m.
func InstrumentInserts(conn driver.Conn, m *InsertMetrics) driver.Conn {
	if m == nil {
		return conn
	}
	return &instrumentedConn{Conn: conn, m: m}
}

type instrumentedConn struct {
	driver.Conn
	m *InsertMetrics
}

func (c *instrumentedConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	table := insertTable(query)
	c.m.errors.WithLabelValues(table) // exists at zero from the first attempt
	start := time.Now()
	b, err := c.Conn.PrepareBatch(ctx, query, opts...)
	if err != nil {
		c.m.errors.WithLabelValues(table).Inc()
		return nil, err
	}
	return &instrumentedBatch{Batch: b, table: table, start: start, m: c.m}, nil
}

type instrumentedBatch struct {
	driver.Batch
	table string
	start time.Time
	m     *InsertMetrics
}

func (b *instrumentedBatch) Send() error {
	rows := b.Rows()
	err := b.Batch.Send()
	b.m.seconds.WithLabelValues(b.table).Observe(time.Since(b.start).Seconds())
	if err != nil {
		b.m.errors.WithLabelValues(b.table).Inc()
		return err
	}
	b.m.rows.WithLabelValues(b.table).Add(float64(rows))
	return nil
}

// insertTable is the table of "INSERT INTO db.table (cols…)".
func insertTable(query string) string {
	f := strings.Fields(query)
	for i := 0; i+2 < len(f); i++ {
		if !strings.EqualFold(f[i], "INSERT") || !strings.EqualFold(f[i+1], "INTO") {
			continue
		}
		t, _, _ := strings.Cut(f[i+2], "(")
		if j := strings.LastIndexByte(t, '.'); j >= 0 {
			t = t[j+1:]
		}
		return strings.Trim(t, "`\"")
	}
	return "unknown"
}
