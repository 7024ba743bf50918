package consume

import (
	"context"
	"errors"
	"testing"
)

// The loop keeps running while work stops on ctx's end, so what work handed
// it last is still taken; work's error wins over the loop's.
func TestWithLoopStopsTheLoopOnlyAfterWorkReturned(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	handed := make(chan int)
	var took []int
	loop := func(ctx context.Context) error {
		for {
			select {
			case n := <-handed:
				took = append(took, n)
			case <-ctx.Done():
				return errors.New("loop stopped")
			}
		}
	}
	errWork := errors.New("work stopped")
	work := func(ctx context.Context) error {
		handed <- 1
		cancel()
		<-ctx.Done()
		handed <- 2 // after ctx's end: the loop must still take it
		return errWork
	}
	if err := WithLoop(ctx, loop, work); !errors.Is(err, errWork) {
		t.Fatalf("WithLoop: %v, want work's error", err)
	}
	if len(took) != 2 {
		t.Fatalf("the loop took %v, want both handed values", took)
	}
	if err := WithLoop(context.Background(), loop, func(context.Context) error { return nil }); err == nil || err.Error() != "loop stopped" {
		t.Fatalf("WithLoop with work ending cleanly: %v, want the loop's error", err)
	}
}
