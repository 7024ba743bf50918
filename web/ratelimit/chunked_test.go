package ratelimit

import (
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestChunkedLimitIsSharedByEdgesAndCountsInChunks(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_005, 0)
	var edges []*Chunked
	for range 2 {
		_, js := srv.Connect(t)
		c, err := NewChunked(js, "counter-reads", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.now = func() time.Time { return now }
		edges = append(edges, c)
	}
	allowed := 0
	for i := range 300 {
		ok, _, err := edges[i%2].Allow(ctx, "key-a", 100)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			allowed++
		}
	}
	if allowed != 100 {
		t.Fatalf("300 reads over 2 edges with a limit of 100: %d allowed", allowed)
	}
	stream, err := js.Stream(ctx, subjects.RateLimitStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Chunks of 5: 20 reservations reach the limit, and each edge asks
	// once more before it knows the window is spent.
	// The stream keeps one message per subject; its sequence counts every
	// publish.
	if n := info.State.LastSeq; n > 22 || n < 20 {
		t.Fatalf("%d publishes for 300 reads, want at most 22 (one per chunk of 5)", n)
	}
	for i, e := range edges {
		ok, retry, err := e.Allow(ctx, "key-a", 100)
		if ok || err != nil || retry != 5*time.Second {
			t.Fatalf("edge %d past the limit: allowed %v, retry after %s, err %v; want refused, 5s", i, ok, retry, err)
		}
	}
	if ok, _, _ := edges[0].Allow(ctx, "key-b", 100); !ok {
		t.Fatal("another key is limited by key-a's reads")
	}
	for _, e := range edges {
		e.now = func() time.Time { return now.Add(10 * time.Second) }
	}
	if ok, _, _ := edges[1].Allow(ctx, "key-a", 100); !ok {
		t.Fatal("the next window still refuses key-a")
	}
}
