package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/accounts"
	"jetfleet/internal/events"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// The demo event is made once per data dir and is live whenever dev
// starts: a restart the next day finds the same event (same participants,
// same host) and moves it to run now.
func TestDemoEventIsLiveAtEveryStartAndKeptPerDataDir(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Now().UTC()}
	svc, err := events.Open(ctx, js, events.Config{BaseURL: "http://localhost:8080", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	users, err := accounts.Open(ctx, js, accounts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), demoEventFile)
	check := func(run string, stream string) events.Event {
		t.Helper()
		e, err := ensureDemoEvent(ctx, svc, users, path, stream, clock.Now)
		if err != nil {
			t.Fatalf("%s: %v", run, err)
		}
		if e.PhaseAt(clock.Now()) != events.PhaseLive || e.StreamURL != stream || e.End.Sub(clock.Now()) < time.Hour {
			t.Fatalf("%s: %s–%s at %s, stream %q: want live now for hours with %q", run, e.Start, e.End, clock.Now(), e.StreamURL, stream)
		}
		for _, p := range demoParticipants {
			if m, _, err := svc.Member(ctx, e.ID, "", p.Email); err != nil || m.RegistrationID == "" {
				t.Fatalf("%s: participant %s: %+v, %v", run, p.Email, m, err)
			}
		}
		if m, _, err := svc.Member(ctx, e.ID, "", demoHost); err != nil || !m.Admin {
			t.Fatalf("%s: host: %+v, %v", run, m, err)
		}
		return e
	}
	first := check("first start", "http://localhost:8080/demo/live/stream.m3u8")
	clock.Advance(26 * time.Hour)
	second := check("next day, another port", "http://localhost:9090/demo/live/stream.m3u8")
	if second.ID != first.ID {
		t.Fatalf("a restart made a new demo event %s (was %s)", second.ID, first.ID)
	}
	roster, err := svc.EventRegistrations(context.Background(), first.OrganiserID, first.ID)
	if err != nil || len(roster.Registrations) != len(demoParticipants) {
		t.Fatalf("%d registrations after two starts (%v); want %d", len(roster.Registrations), err, len(demoParticipants))
	}
}

// The stream ffmpeg is asked for is live HLS: short segments, a rolling
// playlist, old segments deleted, no end.
func TestDemoStreamArgsMakeARollingLiveHLSPlaylist(t *testing.T) {
	args := demoStreamArgs("/data/demo-live")
	joined := " " + strings.Join(args, " ") + " "
	for _, want := range []string{" -f lavfi ", " -f hls ", " -hls_time 2 ", " -hls_list_size 6 ", "delete_segments", "/data/demo-live/stream.m3u8 "} {
		if !strings.Contains(joined, want) {
			t.Errorf("ffmpeg args %q lack %q", joined, want)
		}
	}
}

// Stopping the demo stream stops ffmpeg's whole process group: nothing it
// started outlives dev.
func TestDemoStreamStopsFFmpegAndItsChildren(t *testing.T) {
	dir := t.TempDir()
	// An "ffmpeg" that starts a child of its own and waits.
	fake := filepath.Join(dir, "ffmpeg")
	script := "#!/bin/sh\nsleep 300 &\necho $! > child.pid\necho $$ > parent.pid\nwait\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); superviseDemoStream(ctx, fake, dir, slog.New(slog.DiscardHandler)) }()
	var pids []int
	testenv.Eventually(t, 10*time.Second, "the fake ffmpeg and its child run", func() bool {
		pids = nil
		for _, f := range []string{"parent.pid", "child.pid"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || n == 0 {
				return false
			}
			pids = append(pids, n)
		}
		return true
	})
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not return within 10 s of being stopped")
	}
	for _, pid := range pids {
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("process %d has exited", pid), func() bool {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			// Gone, or a zombie waiting for init to reap it.
			return err != nil || strings.Contains(string(b), ") Z ")
		})
	}
}
