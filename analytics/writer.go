package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// WriterConfig configures a BatchWriter. Zero durations and counts take the
// documented defaults.
type WriterConfig struct {
	// Table is the target table, optionally qualified ("db.table").
	Table string
	// Columns are the inserted columns; each appended row holds one value
	// per column, in this order.
	Columns []string
	// MaxRows triggers a flush when this many rows are buffered, and caps
	// the rows sent in one INSERT. Default 10000.
	MaxRows int
	// MaxAge is how often Run flushes whatever is buffered. Default 1s.
	MaxAge time.Duration
	// MaxBuffered is the back-pressure limit: Append blocks while this many
	// rows wait to be written. Default 10*MaxRows; at least MaxRows.
	MaxBuffered int
	// RetryMin and RetryMax bound the exponential backoff, with jitter,
	// between failed attempts to send a batch. Defaults 100ms and 10s.
	RetryMin, RetryMax time.Duration
}

// WriterStats counts what a BatchWriter has done since it was created.
type WriterStats struct {
	RowsWritten uint64 // rows the server accepted
	Flushes     uint64 // INSERTs the server accepted
	Failures    uint64 // failed INSERT attempts (each one retried)
	Rejected    uint64 // rows the driver could not encode for the columns' types, discarded
	Buffered    int    // rows waiting now
}

// finalFlushTimeout bounds Run's last flush after its context ends.
const finalFlushTimeout = 5 * time.Second

// BatchWriter buffers rows for one table and inserts them in batches: when
// MaxRows rows are waiting and at least every MaxAge (both driven by Run),
// and on Flush. An INSERT that fails is retried with backoff; its rows stay
// buffered until the server accepts them, so an unreachable server never
// loses rows, it only makes Append block once MaxBuffered rows wait.
//
// The one exception is a row the driver cannot encode (a value of the wrong
// type for its column): that is a programming error that retrying cannot fix,
// so the row is logged, counted in WriterStats.Rejected and discarded instead
// of blocking the writer forever.
//
// A BatchWriter is safe for concurrent use.
type BatchWriter struct {
	conn   driver.Conn
	cfg    WriterConfig
	insert string
	logger *slog.Logger

	sending chan struct{} // holds a token while a flush is sending: one at a time
	full    chan struct{} // nudges Run when MaxRows rows wait

	mu    sync.Mutex
	rows  [][]any       // waiting rows, oldest first; a flush sends a prefix
	freed chan struct{} // closed and replaced whenever rows leave rows
	stats WriterStats
}

// NewBatchWriter validates cfg, applies its defaults and returns a writer.
// It does not contact the server.
func NewBatchWriter(conn driver.Conn, cfg WriterConfig, logger *slog.Logger) (*BatchWriter, error) {
	if conn == nil {
		return nil, errors.New("batch writer: conn is nil")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("batch writer config for %q: %w", cfg.Table, err)
	}
	return &BatchWriter{
		conn:    conn,
		cfg:     cfg,
		insert:  fmt.Sprintf("INSERT INTO %s (%s)", cfg.Table, strings.Join(cfg.Columns, ", ")),
		logger:  logger.With("table", cfg.Table),
		sending: make(chan struct{}, 1),
		full:    make(chan struct{}, 1),
		freed:   make(chan struct{}),
	}, nil
}

func (c *WriterConfig) validate() error {
	for _, part := range strings.Split(c.Table, ".") {
		if !isIdent(part) {
			return fmt.Errorf("invalid Table %q: not a plain [db.]table name", c.Table)
		}
	}
	if len(c.Columns) == 0 {
		return errors.New("no Columns")
	}
	for _, col := range c.Columns {
		if !isIdent(col) {
			return fmt.Errorf("invalid Columns entry %q: not a plain column name", col)
		}
	}
	if c.MaxRows < 0 || c.MaxBuffered < 0 || c.MaxAge < 0 || c.RetryMin < 0 || c.RetryMax < 0 {
		return errors.New("MaxRows, MaxBuffered, MaxAge, RetryMin and RetryMax must not be negative")
	}
	if c.MaxRows == 0 {
		c.MaxRows = 10000
	}
	if c.MaxAge == 0 {
		c.MaxAge = time.Second
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = 10 * c.MaxRows
	}
	if c.MaxBuffered < c.MaxRows {
		return fmt.Errorf("MaxBuffered (%d) is below MaxRows (%d)", c.MaxBuffered, c.MaxRows)
	}
	if c.RetryMin == 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.RetryMax < c.RetryMin {
		return fmt.Errorf("RetryMax (%v) is below RetryMin (%v)", c.RetryMax, c.RetryMin)
	}
	return nil
}

// isIdent reports whether s is a bare ClickHouse identifier, which needs no
// quoting in SQL.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// Append buffers one row, its values in Columns order. It blocks while
// MaxBuffered rows wait, until room frees up or ctx ends.
func (w *BatchWriter) Append(ctx context.Context, row ...any) error {
	if len(row) != len(w.cfg.Columns) {
		return fmt.Errorf("append to %s: got %d values for %d columns (%s)",
			w.cfg.Table, len(row), len(w.cfg.Columns), strings.Join(w.cfg.Columns, ", "))
	}
	for {
		w.mu.Lock()
		if len(w.rows) < w.cfg.MaxBuffered {
			// Copy: the caller may reuse its slice.
			w.rows = append(w.rows, append([]any(nil), row...))
			n := len(w.rows)
			w.mu.Unlock()
			if n >= w.cfg.MaxRows {
				select {
				case w.full <- struct{}{}:
				default:
				}
			}
			return nil
		}
		freed := w.freed
		w.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return fmt.Errorf("append to %s: %d rows waiting: %w", w.cfg.Table, w.cfg.MaxBuffered, ctx.Err())
		}
	}
}

// Flush sends every row buffered when it is called, in INSERTs of at most
// MaxRows rows. A failed INSERT is retried with backoff until it succeeds or
// ctx ends; in the latter case the unsent rows stay buffered for the next
// flush and Flush returns the error.
func (w *BatchWriter) Flush(ctx context.Context) error {
	select {
	case w.sending <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("flush %s: %w", w.cfg.Table, ctx.Err())
	}
	defer func() { <-w.sending }()

	w.mu.Lock()
	pending := len(w.rows)
	w.mu.Unlock()
	for pending > 0 {
		// Only a flush removes rows, one flush runs at a time, and
		// Append only adds after the pending ones: the chunk stays
		// valid while it is being sent.
		w.mu.Lock()
		chunk := w.rows[:min(pending, w.cfg.MaxRows)]
		w.mu.Unlock()

		err := w.sendWithRetry(ctx, chunk)
		var rej *rejectedRowError
		switch {
		case errors.As(err, &rej):
			w.logger.Error("discarding row the driver cannot encode", "row", chunk[rej.index], "error", rej.err)
			w.remove(rej.index, rej.index+1)
			w.mu.Lock()
			w.stats.Rejected++
			w.mu.Unlock()
			pending--
		case err != nil:
			return fmt.Errorf("flush %s: %d rows still buffered: %w", w.cfg.Table, w.Stats().Buffered, err)
		default:
			w.remove(0, len(chunk))
			pending -= len(chunk)
		}
	}
	return nil
}

// remove drops rows[i:j], which have been written or rejected, and wakes
// blocked Appends.
func (w *BatchWriter) remove(i, j int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rows = slices.Delete(w.rows, i, j)
	close(w.freed)
	w.freed = make(chan struct{})
}

// rejectedRowError reports a row the driver refused to encode. Retrying
// cannot help, so it ends sendWithRetry at once.
type rejectedRowError struct {
	index int
	err   error
}

func (e *rejectedRowError) Error() string {
	return fmt.Sprintf("row %d: %v", e.index, e.err)
}

// sendWithRetry inserts rows, retrying with backoff until the server accepts
// them or ctx ends.
func (w *BatchWriter) sendWithRetry(ctx context.Context, rows [][]any) error {
	for attempt := 0; ; attempt++ {
		err := w.send(ctx, rows)
		if err == nil {
			w.mu.Lock()
			w.stats.RowsWritten += uint64(len(rows))
			w.stats.Flushes++
			w.mu.Unlock()
			return nil
		}
		var rej *rejectedRowError
		if errors.As(err, &rej) {
			return err
		}
		w.mu.Lock()
		w.stats.Failures++
		w.mu.Unlock()
		if ctx.Err() != nil {
			return fmt.Errorf("insert %d rows: %w", len(rows), err)
		}
		delay := w.backoff(attempt)
		w.logger.Warn("insert failed, will retry", "rows", len(rows), "attempt", attempt+1, "retry_in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("insert %d rows: %w (last error: %w)", len(rows), ctx.Err(), err)
		}
	}
}

// send makes one attempt at inserting rows as a single INSERT.
func (w *BatchWriter) send(ctx context.Context, rows [][]any) error {
	batch, err := w.conn.PrepareBatch(ctx, w.insert)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	for i, row := range rows {
		// The native driver encodes rows locally, so an error here is
		// about this row's values, not about the server.
		if err := batch.Append(row...); err != nil {
			_ = batch.Abort()
			return &rejectedRowError{index: i, err: err}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// backoff is the delay before retry number attempt+1: RetryMin doubled per
// attempt up to RetryMax, of which a random half is taken off so writers
// that failed together do not retry together.
func (w *BatchWriter) backoff(attempt int) time.Duration {
	d := w.cfg.RetryMax
	if attempt < 32 {
		d = min(w.cfg.RetryMin<<attempt, w.cfg.RetryMax)
		if d <= 0 { // overflow
			d = w.cfg.RetryMax
		}
	}
	return d/2 + rand.N(d/2+1)
}

// Run flushes every MaxAge, and as soon as MaxRows rows wait, until ctx
// ends. Then it makes a last flush with a fresh timeout of 5s and returns
// its error, nil when every row was written. Call it once, in a goroutine
// owned by the writer's user (an errgroup, typically).
func (w *BatchWriter) Run(ctx context.Context) error {
	tick := time.NewTicker(w.cfg.MaxAge)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
			defer cancel()
			if err := w.Flush(final); err != nil {
				return fmt.Errorf("final flush: %w", err)
			}
			return nil
		case <-tick.C:
		case <-w.full:
		}
		// Errors were logged by the retries, and a flush only gives up
		// when ctx ends, which the next iteration handles.
		_ = w.Flush(ctx)
	}
}

// Stats returns the writer's counters.
func (w *BatchWriter) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Buffered = len(w.rows)
	return s
}
