package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxDeliveriesAdvisories is where the server announces a message that
// reached its consumer's MaxDeliver without being acknowledged.
const maxDeliveriesAdvisories = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"

type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// Sweep dead-letters messages the server gave up on by itself. The runtime
// dead-letters a message whose last attempt fails, but when a worker dies
// (or times out) holding the last delivery, the server only stops
// redelivering and publishes an advisory: without Sweep that message would
// sit unseen. Every worker process may run Sweep; the DLQ's message-id dedupe
// keeps one entry per message. It runs until ctx ends.
func Sweep(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) error {
	advisories := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(maxDeliveriesAdvisories, advisories)
	if err != nil {
		return fmt.Errorf("subscribe to max-deliveries advisories: %w", err)
	}
	defer sub.Unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-advisories:
			var a maxDeliveriesAdvisory
			if err := json.Unmarshal(m.Data, &a); err != nil {
				log.Warn("unreadable max-deliveries advisory", "err", err)
				continue
			}
			if err := sweepOne(ctx, js, a); err != nil {
				log.Error("dead-letter message after max deliveries", "stream", a.Stream, "seq", a.StreamSeq, "err", err)
				continue
			}
			log.Warn("message dead-lettered after max deliveries without an outcome",
				"stream", a.Stream, "consumer", a.Consumer, "seq", a.StreamSeq, "deliveries", a.Deliveries)
		}
	}
}

func sweepOne(ctx context.Context, js jetstream.JetStream, a maxDeliveriesAdvisory) error {
	stream, err := js.Stream(ctx, a.Stream)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	m, err := stream.GetMsg(ctx, a.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // already gone (acked late, or removed by an operator)
	}
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	err = Write(ctx, js, Record{
		Subject: m.Subject, Header: m.Header, Data: m.Data,
		Stream: a.Stream, Consumer: a.Consumer, Seq: a.StreamSeq, Deliveries: a.Deliveries,
		Cause: fmt.Sprintf("no outcome after %d deliveries: the worker holding it died or exceeded the ack wait each time", a.Deliveries),
	})
	if err != nil {
		return err
	}
	// A work-queue stream would keep the unacknowledged message forever; the
	// DLQ now holds it.
	if stream.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
		if err := stream.DeleteMsg(ctx, a.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("remove from work queue: %w", err)
		}
	}
	return nil
}
