package analytics

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DurableWriter is a group commit over BatchWriter: Write returns only once
// its row is in ClickHouse, so a role acknowledges a message after its row
// is stored (a crash before that redelivers it, and the replayed row must be
// replay-safe: collapsed by a ReplacingMergeTree or counted by distinct id),
// while the rows of all messages in flight still go in one INSERT per flush
// interval.
type DurableWriter struct {
	w     *BatchWriter
	every time.Duration
	log   *slog.Logger

	mu       sync.Mutex
	appended uint64        // rows handed to w
	flushed  uint64        // rows known to be in ClickHouse
	wake     chan struct{} // closed and replaced after each successful flush
	nudge    chan struct{}
	maxRows  int
}

// NewDurableWriter returns a DurableWriter into table's columns that
// flushes every interval (and sooner when many rows wait) once Run runs.
func NewDurableWriter(conn driver.Conn, table string, columns []string, every time.Duration, log *slog.Logger) (*DurableWriter, error) {
	const maxRows = 20000
	w, err := NewBatchWriter(conn, WriterConfig{
		Table: table, Columns: columns, MaxRows: maxRows, MaxBuffered: 10 * maxRows,
	}, log)
	if err != nil {
		return nil, err
	}
	return &DurableWriter{w: w, every: every, log: log, wake: make(chan struct{}), nudge: make(chan struct{}, 1), maxRows: maxRows}, nil
}

// Write stores one row and waits until it is in ClickHouse or ctx ends.
func (d *DurableWriter) Write(ctx context.Context, row ...any) error {
	return d.WriteRows(ctx, [][]any{row})
}

// WriteRows stores rows and waits until all of them are in ClickHouse or
// ctx ends: one wait for a job that writes many rows.
func (d *DurableWriter) WriteRows(ctx context.Context, rows [][]any) error {
	var mine uint64
	for _, row := range rows {
		if err := d.w.Append(ctx, row...); err != nil {
			return err
		}
		d.mu.Lock()
		d.appended++
		mine = d.appended
		if int(d.appended-d.flushed) >= d.maxRows {
			select {
			case d.nudge <- struct{}{}:
			default:
			}
		}
		d.mu.Unlock()
	}
	for {
		d.mu.Lock()
		done, wake := d.flushed >= mine, d.wake
		d.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("wait for rows to be stored: %w", ctx.Err())
		}
	}
}

// Run flushes every interval (sooner when many rows wait) until ctx ends,
// then once more.
func (d *DurableWriter) Run(ctx context.Context) error {
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return d.flush(final)
		case <-t.C:
		case <-d.nudge:
		}
		if err := d.flush(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("flush failed; rows stay buffered", "err", err)
		}
	}
}

func (d *DurableWriter) flush(ctx context.Context) error {
	d.mu.Lock()
	// Every row counted in appended is already in w's buffer: Flush sends
	// at least those.
	target := d.appended
	pending := target > d.flushed
	d.mu.Unlock()
	if !pending {
		return nil
	}
	if err := d.w.Flush(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	d.flushed = max(d.flushed, target)
	close(d.wake)
	d.wake = make(chan struct{})
	d.mu.Unlock()
	return nil
}
