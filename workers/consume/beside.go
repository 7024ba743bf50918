package consume

import "context"

// WithLoop runs loop beside work and returns work's error, or else loop's.
// loop (a batch writer's flush loop, say) is stopped only once work has
// returned, with a context ctx's end does not cancel, so what work handed
// it before stopping is still written: a role's consumer stops taking
// messages at shutdown and its writer flushes what they produced.
func WithLoop(ctx context.Context, loop, work func(context.Context) error) error {
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- loop(lctx) }()
	err := work(ctx)
	stop()
	if lerr := <-done; err == nil {
		err = lerr
	}
	return err
}
