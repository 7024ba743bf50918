package enricher

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// TestConcurrentMultiGetsEachGetTheirOwnLastValues runs many batched direct
// gets at once over the getter's one reply subscription: each call gets the
// last value of exactly its keys, keys without a value are left out, and no
// call stays registered afterwards.
func TestConcurrentMultiGetsEachGetTheirOwnLastValues(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	bucket := subjects.EnricherUsersBucket(0)
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		for v := range 2 { // the last value counts, not the first
			if _, err := kv.Put(ctx, fmt.Sprintf("k%d", i), fmt.Appendf(nil, "v%d.%d", i, v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	g, err := newMultiGetter(js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.close() })

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for c := range 20 {
		wg.Go(func() {
			// Call c asks for keys c..c+9 (those over 49 do not exist) and
			// one key no one ever wrote.
			var subs []string
			for i := c; i < c+10; i++ {
				subs = append(subs, subjects.KVPutSubject(bucket, fmt.Sprintf("k%d", i)))
			}
			subs = append(subs, subjects.KVPutSubject(bucket, "never"))
			msgs, err := g.lastMsgs(ctx, "KV_"+bucket, subs)
			if err != nil {
				errs <- fmt.Errorf("call %d: %w", c, err)
				return
			}
			var got, want []string
			for _, m := range msgs {
				got = append(got, m.Subject+"="+string(m.Data))
			}
			for i := c; i < min(c+10, 50); i++ {
				want = append(want, subjects.KVPutSubject(bucket, fmt.Sprintf("k%d", i))+fmt.Sprintf("=v%d.1", i))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				errs <- fmt.Errorf("call %d: got %v, want %v", c, got, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Nothing matches at all: an empty answer, not an error.
	msgs, err := g.lastMsgs(ctx, "KV_"+bucket, []string{subjects.KVPutSubject(bucket, "never")})
	if err != nil || len(msgs) != 0 {
		t.Errorf("no match: %d messages, %v", len(msgs), err)
	}
	g.mu.Lock()
	left := len(g.waiting)
	g.mu.Unlock()
	if left != 0 {
		t.Errorf("%d calls still registered after all returned", left)
	}
}
