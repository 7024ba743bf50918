package tracker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/analytics"
)

// durableWriter is a group commit over analytics.BatchWriter: Write returns
// only once its row is in ClickHouse, so a job is acknowledged after its
// sample is stored (a crash before that redelivers the job, and the replayed
// row collapses in the ReplacingMergeTree), while the rows of all jobs in
// flight still go in one INSERT per flush interval.
type durableWriter struct {
	w     *analytics.BatchWriter
	every time.Duration
	log   *slog.Logger

	mu       sync.Mutex
	appended uint64        // rows handed to w
	flushed  uint64        // rows known to be in ClickHouse
	wake     chan struct{} // closed and replaced after each successful flush
	nudge    chan struct{}
	maxRows  int
}

func newDurableWriter(conn driver.Conn, table string, columns []string, every time.Duration, log *slog.Logger) (*durableWriter, error) {
	const maxRows = 20000
	w, err := analytics.NewBatchWriter(conn, analytics.WriterConfig{
		Table: table, Columns: columns, MaxRows: maxRows, MaxBuffered: 10 * maxRows,
	}, log)
	if err != nil {
		return nil, err
	}
	return &durableWriter{w: w, every: every, log: log, wake: make(chan struct{}), nudge: make(chan struct{}, 1), maxRows: maxRows}, nil
}

// Write stores one row and waits until it is in ClickHouse or ctx ends.
func (d *durableWriter) Write(ctx context.Context, row ...any) error {
	if err := d.w.Append(ctx, row...); err != nil {
		return err
	}
	d.mu.Lock()
	d.appended++
	mine := d.appended
	if int(d.appended-d.flushed) >= d.maxRows {
		select {
		case d.nudge <- struct{}{}:
		default:
		}
	}
	d.mu.Unlock()
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
			return fmt.Errorf("wait for row to be stored: %w", ctx.Err())
		}
	}
}

// Run flushes every interval (sooner when many rows wait) until ctx ends,
// then once more.
func (d *durableWriter) Run(ctx context.Context) error {
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

func (d *durableWriter) flush(ctx context.Context) error {
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
