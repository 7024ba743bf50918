package deadletter

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Record is a message being given up on, with where it came from and why.
type Record struct {
	Subject    string // subject it was published to
	Header     nats.Header
	Data       []byte
	Stream     string
	Consumer   string
	Seq        uint64 // stream sequence
	Deliveries uint64
	Cause      string
}

// Write copies r to the DLQ stream. The copy's message id is derived from
// the original stream sequence, so writing the same message twice (a crash
// between the copy and the term, or the runtime and the Sweeper both giving
// up on it) makes one DLQ entry.
func Write(ctx context.Context, js jetstream.JetStream, r Record) error {
	out := nats.NewMsg(subjects.DLQ(r.Stream, r.Consumer))
	out.Data = r.Data
	for k, vs := range r.Header {
		// Server-interpreted headers (Nats-Msg-Id, Nats-TTL, schedules…) would
		// change how the copy is stored; the original's are not needed.
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		out.Header[k] = vs
	}
	out.Header.Set(subjects.HeaderDLQSubject, r.Subject)
	out.Header.Set(subjects.HeaderDLQStream, r.Stream)
	out.Header.Set(subjects.HeaderDLQConsumer, r.Consumer)
	out.Header.Set(subjects.HeaderDLQSequence, strconv.FormatUint(r.Seq, 10))
	out.Header.Set(subjects.HeaderDLQDeliveries, strconv.FormatUint(r.Deliveries, 10))
	out.Header.Set(subjects.HeaderDLQError, truncate(r.Cause, 2000))
	out.Header.Set(subjects.HeaderDLQTime, time.Now().UTC().Format(time.RFC3339))
	out.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq:%s:%d", r.Stream, r.Seq))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("publish to %s: %w", out.Subject, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
