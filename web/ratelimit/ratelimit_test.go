package ratelimit

import (
	"testing"
	"time"
)

func TestBurstThenOnePerInterval(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	k := New(time.Minute, 3)
	k.now = func() time.Time { return now }
	for i := range 3 {
		if !k.Allow("a") {
			t.Fatalf("attempt %d of the burst refused", i+1)
		}
	}
	if k.Allow("a") {
		t.Fatal("4th attempt within the minute allowed")
	}
	if !k.Allow("b") {
		t.Fatal("another key is limited by a's use")
	}
	now = now.Add(time.Minute)
	if !k.Allow("a") {
		t.Fatal("not allowed again after the interval")
	}
}

func TestIdleKeysAreForgotten(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	k := New(time.Second, 1)
	k.now = func() time.Time { return now }
	for _, key := range []string{"a", "b", "c"} {
		k.Allow(key)
	}
	now = now.Add(time.Hour)
	k.Allow("d")
	if len(k.buckets) != 1 {
		t.Fatalf("%d buckets kept after an hour idle, want 1", len(k.buckets))
	}
}
