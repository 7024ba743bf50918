package analytics_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/analytics"
	"jetfleet/analytics/localserver"
	"jetfleet/internal/testenv"
)

const createEvents = "CREATE TABLE events (id UInt64, name String) ENGINE = MergeTree() ORDER BY id"

// eventsWriter creates the events table and a writer for it.
func eventsWriter(t *testing.T, conn driver.Conn, cfg analytics.WriterConfig) *analytics.BatchWriter {
	t.Helper()
	if err := conn.Exec(t.Context(), createEvents); err != nil {
		t.Fatalf("create events: %v", err)
	}
	cfg.Table, cfg.Columns = "events", []string{"id", "name"}
	w, err := analytics.NewBatchWriter(conn, cfg, nil)
	if err != nil {
		t.Fatalf("new batch writer: %v", err)
	}
	return w
}

func appendEvents(t *testing.T, w *analytics.BatchWriter, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := w.Append(t.Context(), uint64(i), fmt.Sprintf("event %d", i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// runWriter runs w.Run until the test ends and returns a function that stops
// it and returns Run's result.
func runWriter(t *testing.T, w *analytics.BatchWriter) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(cancel)
	return func() error {
		cancel()
		return <-done
	}
}

func TestBatchWriterFlushesWhenMaxRowsReached(t *testing.T) {
	conn, _ := ch.Database(t)
	// MaxAge is far away: only the row count can trigger the flush.
	w := eventsWriter(t, conn, analytics.WriterConfig{MaxRows: 5, MaxAge: time.Hour})
	stop := runWriter(t, w)

	appendEvents(t, w, 0, 5)
	testenv.Eventually(t, 10*time.Second, "5 rows written", func() bool { return count(t, conn, "events") == 5 })
	if s := w.Stats(); s.Flushes != 1 || s.RowsWritten != 5 || s.Buffered != 0 {
		t.Fatalf("stats %+v, want one flush of 5 rows", s)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestBatchWriterRunFlushesByAge(t *testing.T) {
	conn, _ := ch.Database(t)
	w := eventsWriter(t, conn, analytics.WriterConfig{MaxRows: 1000, MaxAge: 20 * time.Millisecond})
	stop := runWriter(t, w)

	appendEvents(t, w, 0, 3)
	testenv.Eventually(t, 10*time.Second, "3 rows written", func() bool { return count(t, conn, "events") == 3 })
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestBatchWriterRunWritesRemainingRowsWhenStopped(t *testing.T) {
	conn, _ := ch.Database(t)
	w := eventsWriter(t, conn, analytics.WriterConfig{MaxRows: 1000, MaxAge: time.Hour})
	stop := runWriter(t, w)

	appendEvents(t, w, 0, 3)
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := count(t, conn, "events"); n != 3 {
		t.Fatalf("%d rows written, want 3", n)
	}
}

func TestBatchWriterAppendRejectsWrongNumberOfValues(t *testing.T) {
	conn, _ := ch.Database(t)
	w := eventsWriter(t, conn, analytics.WriterConfig{})
	for _, row := range [][]any{nil, {uint64(1)}, {uint64(1), "a", "extra"}} {
		if err := w.Append(t.Context(), row...); err == nil {
			t.Errorf("Append(%v) succeeded, want an error", row)
		}
	}
	if s := w.Stats(); s.Buffered != 0 {
		t.Fatalf("%d rows buffered after rejected appends", s.Buffered)
	}
}

func TestBatchWriterAppendWaitsWhileBufferFull(t *testing.T) {
	conn, _ := ch.Database(t)
	w := eventsWriter(t, conn, analytics.WriterConfig{MaxRows: 2, MaxBuffered: 2})
	appendEvents(t, w, 0, 2)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Append(cancelled, uint64(2), "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("append to a full buffer with a cancelled context: %v, want context.Canceled", err)
	}

	appended := make(chan error, 1)
	go func() { appended <- w.Append(context.Background(), uint64(2), "event 2") }()
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	select {
	case err := <-appended:
		if err != nil {
			t.Fatalf("blocked append: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("append still blocked after the buffer was flushed")
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if n := count(t, conn, "events"); n != 3 {
		t.Fatalf("%d rows written, want 3", n)
	}
}

func TestBatchWriterDiscardsRowOfWrongTypeAndWritesTheOthers(t *testing.T) {
	conn, _ := ch.Database(t)
	w := eventsWriter(t, conn, analytics.WriterConfig{})
	for _, row := range [][]any{{uint64(1), "a"}, {"not a number", "b"}, {uint64(3), "c"}} {
		if err := w.Append(t.Context(), row...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if n := count(t, conn, "events"); n != 2 {
		t.Fatalf("%d rows written, want 2", n)
	}
	if s := w.Stats(); s.Rejected != 1 || s.Buffered != 0 {
		t.Fatalf("stats %+v, want 1 rejected and none buffered", s)
	}
}

func TestBatchWriterLosesNoRowsWhileClickHouseIsDown(t *testing.T) {
	// A server of its own, to stop and restart on the same data and ports.
	dir := t.TempDir()
	ctx := testenv.Context(t, 2*time.Minute)
	srv, err := localserver.Start(ctx, localserver.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	conn, err := analytics.Open(ctx, analytics.Config{URL: srv.DatabaseDSN("outage")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	w := eventsWriter(t, conn, analytics.WriterConfig{RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond})

	appendEvents(t, w, 0, 10)
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("flush while up: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("stop server: %v", err)
	}

	appendEvents(t, w, 10, 20)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = w.Flush(short)
	cancel()
	if err == nil {
		t.Fatal("flush succeeded with the server down")
	}
	if s := w.Stats(); s.Failures == 0 || s.Buffered != 10 {
		t.Fatalf("stats %+v after a failed flush, want failures and 10 rows kept", s)
	}
	t.Logf("flush while down: %v", err)

	// A flush retrying across the restart succeeds once the server is back.
	failed := w.Stats().Failures
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush(ctx) }()
	appendEvents(t, w, 20, 25)
	testenv.Eventually(t, 10*time.Second, "flush retrying", func() bool { return w.Stats().Failures > failed+1 })
	srv, err = localserver.Start(ctx, localserver.Config{Dir: dir, TCPPort: srv.TCPPort(), HTTPPort: srv.HTTPPort()})
	if err != nil {
		t.Fatalf("restart server: %v", err)
	}
	t.Cleanup(func() { srv.Stop() })
	if err := <-flushed; err != nil {
		t.Fatalf("flush across restart: %v", err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("flush after restart: %v", err)
	}
	if n := count(t, conn, "events"); n != 25 {
		t.Fatalf("%d rows after the outage, want 25", n)
	}
	if n := count(t, conn, "(SELECT DISTINCT id FROM events)"); n != 25 {
		t.Fatalf("%d distinct ids after the outage, want 25", n)
	}
	t.Logf("stats: %+v", w.Stats())
}

func TestVideoSamplesReplayCollapsesUnderFinal(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, time.Minute)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	w, err := analytics.NewBatchWriter(conn, analytics.WriterConfig{
		Table:   "video_samples",
		Columns: []string{"video_id", "channel_id", "sampled_at", "views", "likes", "title", "thumb_hash"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	slot := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	samples := [][]any{
		{"vid1", "chan1", slot, uint64(100), uint64(5), "First title", "h1"},
		{"vid1", "chan1", slot.Add(time.Hour), uint64(180), uint64(9), "First title", "h1"},
		{"vid2", "chan1", slot, uint64(7), uint64(0), "Other", "h2"},
	}
	// The same samples twice, in separate inserts, as a redelivered job would.
	for range 2 {
		for _, s := range samples {
			if err := w.Append(ctx, s...); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, conn, "video_samples FINAL"); n != 3 {
		t.Fatalf("%d samples under FINAL after a replay, want 3", n)
	}
	var views uint64
	if err := conn.QueryRow(ctx, "SELECT views FROM video_samples FINAL WHERE video_id = ? AND sampled_at = ?", "vid1", slot.Add(time.Hour)).Scan(&views); err != nil {
		t.Fatal(err)
	}
	if views != 180 {
		t.Fatalf("views = %d, want 180", views)
	}
}
