package ratelimit

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestSharedLimitIsOneCountForEveryEdge(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	// Three edges, each with its own connection and limiter, share one
	// limit of 5 per minute for an inbox.
	var edges []*Shared
	for range 3 {
		_, js := srv.Connect(t)
		s, err := NewShared(js, "signin-inbox", 5, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		s.now = func() time.Time { return now }
		edges = append(edges, s)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			ok, err := edges[i%3].Allow(ctx, "ada@example.com")
			if err != nil {
				t.Error(err)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 5 {
		t.Fatalf("30 attempts over 3 edges: %d allowed, want exactly 5", got)
	}
	if ok, _ := edges[0].Allow(ctx, "bob@example.com"); !ok {
		t.Fatal("another key is limited by ada's use")
	}
	// The next window starts afresh.
	for _, e := range edges {
		e.now = func() time.Time { return now.Add(time.Minute) }
	}
	if ok, _ := edges[1].Allow(ctx, "ada@example.com"); !ok {
		t.Fatal("the next window still refuses ada")
	}
}

func TestSharedLimitRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		scope  string
		limit  int
		window time.Duration
	}{
		{"Upper", 1, time.Minute},
		{"a.b", 1, time.Minute},
		{"ok", 0, time.Minute},
		{"ok", 1, 2 * time.Hour},
		{"ok", 1, 1500 * time.Millisecond},
	} {
		if _, err := NewShared(nil, tc.scope, tc.limit, tc.window); err == nil {
			t.Errorf("NewShared(%q, %d, %s) accepted", tc.scope, tc.limit, tc.window)
		}
	}
}
