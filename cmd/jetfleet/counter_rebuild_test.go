package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/workers/counter"
)

// feed sends a read phase of 100 batches, 10 per simulated second, then a
// write phase of 50 rows in one step.
func feed(m *rebuildMeter, clock *time.Time) {
	start := *clock
	for done := 10; done <= 100; done += 10 {
		*clock = clock.Add(time.Second)
		m.update(counter.RebuildProgress{Phase: counter.RebuildRead, Done: done, Total: 100, Elapsed: clock.Sub(start)})
	}
	*clock = clock.Add(time.Second)
	m.update(counter.RebuildProgress{Phase: counter.RebuildWrite, Done: 50, Total: 50, Elapsed: time.Second})
}

// Off a terminal (a log file, CI) a rebuild logs its rows done, rate and
// time left every few seconds, and a line when each phase ends.
func TestRebuildProgressLogsALineEveryFewSecondsOffATerminal(t *testing.T) {
	var logs testenv.Buffer
	clock := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	m := &rebuildMeter{out: &testenv.Buffer{}, log: slog.New(slog.NewTextHandler(&logs, nil)), now: func() time.Time { return clock }, every: 5 * time.Second}
	feed(m, &clock)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	// Seconds 1..10 of reading: a line at 6 s (5 s after the first update)
	// and at the end of the phase; one at the end of writing.
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), logs.String())
	}
	for _, want := range []string{"phase=read done=60 total=100 per_second=10 left=4s", "phase=read done=100 total=100", "phase=write done=50 total=50"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no line with %q:\n%s", want, logs.String())
		}
	}
}

// On a terminal the progress is one line per phase, redrawn in place.
func TestRebuildProgressRedrawsOneLineOnATerminal(t *testing.T) {
	var out testenv.Buffer
	clock := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	m := &rebuildMeter{out: &out, tty: true, log: slog.New(slog.DiscardHandler), now: func() time.Time { return clock }, every: 5 * time.Second}
	feed(m, &clock)
	got := out.String()
	if strings.Count(got, "\n") != 2 || strings.Count(got, "\r") != 11 {
		t.Errorf("want 10 redraws of the read line and 1 of the write line, each phase ended by a newline; got %q", got)
	}
	for _, want := range []string{"raw batches read: 30 of 100, 10/s, 7s left", "raw batches read: 100 of 100, 10/s, done", "rollup rows written: 50 of 50, 50/s, done"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in %q", want, got)
		}
	}
}
