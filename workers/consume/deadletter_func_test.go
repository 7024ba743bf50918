package consume_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

func TestDeadLetterFuncCopiesMessageWithReason(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, subjects.MailSend, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, subjects.MailStream, subjects.MailConsumer)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a repeat makes one entry
		if err := consume.DeadLetter(ctx, js, msg, errors.New("payload is not JSON")); err != nil {
			t.Fatal(err)
		}
	}
	dlq, err := js.Stream(ctx, subjects.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dlq.GetLastMsgForSubject(ctx, subjects.DLQ(subjects.MailStream, subjects.MailConsumer))
	if err != nil {
		t.Fatalf("dead letter not found: %v", err)
	}
	if got.Header.Get(subjects.HeaderDLQError) != "payload is not JSON" || string(got.Data) != "not json" {
		t.Errorf("dead letter = %q with reason %q", got.Data, got.Header.Get(subjects.HeaderDLQError))
	}
	if info, _ := dlq.Info(ctx); info.State.Msgs != 1 {
		t.Errorf("DLQ holds %d messages, want 1", info.State.Msgs)
	}
}
