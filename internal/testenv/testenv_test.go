package testenv_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, as the real one does, without failing this test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs poll against a recorder and returns the message it failed
// with ("" when it returned).
func failure(poll func(testing.TB)) string {
	r := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		poll(r)
	}()
	<-done
	return r.msg
}

func TestEventuallyStateFailsWithTheLastObservedState(t *testing.T) {
	n := 0
	msg := failure(func(tb testing.TB) {
		testenv.EventuallyState(tb, 30*time.Millisecond, "three events out", func() (bool, any) {
			n++
			return false, fmt.Sprintf("%d polls, 2 events out", n)
		})
	})
	want := fmt.Sprintf("three events out; last observed: %d polls, 2 events out", n)
	if !strings.Contains(msg, want) {
		t.Fatalf("failure message %q does not end with the last observed state %q", msg, want)
	}
}

func TestEventuallyStateReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	msg := failure(func(tb testing.TB) {
		testenv.EventuallyState(tb, time.Minute, "third poll", func() (bool, any) {
			n++
			return n == 3, n
		})
	})
	if msg != "" || n != 3 {
		t.Fatalf("after %d polls it failed with %q; want a return on the third poll", n, msg)
	}
}

func TestEventuallyFailsWithItsMessageAlone(t *testing.T) {
	msg := failure(func(tb testing.TB) {
		testenv.Eventually(tb, 30*time.Millisecond, "never", func() bool { return false })
	})
	if !strings.HasSuffix(msg, ": never") {
		t.Fatalf("failure message %q; want it to end with the message %q and nothing after", msg, ": never")
	}
}
