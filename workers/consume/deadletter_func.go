package consume

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// DeadLetter copies msg to the DLQ stream with cause as the reason, exactly
// as the Consumer runtime does for a Permanent error (same headers, same
// Nats-Msg-Id derived from the original sequence, so a repeat makes one DLQ
// entry). Roles that pull on their own (the counter's partition owners, which
// must process their partition in order and ack after a flush) use it; the
// caller then acknowledges or terminates msg itself.
func DeadLetter(ctx context.Context, js jetstream.JetStream, msg jetstream.Msg, cause error) error {
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", msg.Subject(), err)
	}
	c := &Consumer{js: js}
	return c.deadLetter(ctx, msg, md, cause)
}
