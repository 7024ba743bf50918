package chathub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"jetfleet/internal/chat"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web/chathub"
)

func render(m chat.Message) []byte { return fmt.Appendf(nil, `{"seq":%d}`, m.ID) }

func TestASlowSocketIsClosedWithoutHoldingUpTheOthersAndTheRoomIsReleased(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	store, err := chat.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	hub := chathub.New(ctx, js, store, render, chathub.Config{Window: 10, Slot: 10 * time.Millisecond}, nil)
	slow, err := hub.Join(ctx, "ev", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := hub.Join(ctx, "ev", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	if hub.Rooms() != 1 {
		t.Fatalf("%d rooms for two sockets of one room", hub.Rooms())
	}
	stuck := make(chan struct{})
	slowDone := make(chan error, 1)
	go func() {
		slowDone <- slow.Run(ctx, func(ctx context.Context, _ []byte) error { <-stuck; return nil })
	}()
	var mu sync.Mutex
	var got []uint64
	go fast.Run(ctx, func(_ context.Context, f []byte) error {
		var fr struct{ Items []struct{ Seq uint64 } }
		json.Unmarshal(f, &fr)
		mu.Lock()
		for _, it := range fr.Items {
			got = append(got, it.Seq)
		}
		mu.Unlock()
		return nil
	})
	// One message at a time, each taken by the fast socket before the
	// next: the slow one falls 30 behind a window of 10.
	for i := range 30 {
		if _, _, err := store.Post(ctx, chat.Message{EventID: "ev", Room: "main", UserID: "u", Text: "x"}, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		testenv.EventuallyState(t, 10*time.Second, "the fast socket keeps up while the slow one is stuck", func() (bool, any) {
			mu.Lock()
			defer mu.Unlock()
			return len(got) == i+1, got
		})
	}
	close(stuck)
	select {
	case err := <-slowDone:
		if !errors.Is(err, chathub.ErrBehind) {
			t.Fatalf("slow socket ended with %v, want ErrBehind", err)
		}
	case <-ctx.Done():
		t.Fatal("the slow socket was never told it fell behind")
	}
	slow.Leave()
	fast.Leave()
	if hub.Rooms() != 0 {
		t.Errorf("%d rooms followed after every socket left", hub.Rooms())
	}
}
