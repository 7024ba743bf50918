package mail_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/mail"
	"jetfleet/subjects"
)

func mailStreamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(ctx(t), subjects.MailStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestEnqueueOfAnInvalidMailFailsAndPublishesNothing(t *testing.T) {
	js := provisioned(t)
	m := signInMail()
	m.To = "ada at example dot com"
	m.Subject = ""
	err := mail.Enqueue(ctx(t), js, m)
	if !errors.Is(err, mail.ErrInvalid) {
		t.Fatalf("Enqueue = %v, want ErrInvalid", err)
	}
	for _, field := range []string{"to:", "subject:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	if n := mailStreamMsgs(t, js); n != 0 {
		t.Fatalf("%s holds %d messages, want 0", subjects.MailStream, n)
	}
}

func TestEnqueueTwiceWithTheSameIDStoresOneMessage(t *testing.T) {
	js := provisioned(t)
	m := signInMail()
	for range 2 {
		if err := mail.Enqueue(ctx(t), js, m); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	if n := mailStreamMsgs(t, js); n != 1 {
		t.Fatalf("%s holds %d messages, want 1", subjects.MailStream, n)
	}

	s, err := js.Stream(ctx(t), subjects.MailStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx(t), subjects.MailSend)
	if err != nil {
		t.Fatal(err)
	}
	if id := raw.Header.Get(jetstream.MsgIDHeader); id != m.ID {
		t.Errorf("Nats-Msg-Id = %q, want %q", id, m.ID)
	}
	var got subjects.Mail
	if err := json.Unmarshal(raw.Data, &got); err != nil || got != m {
		t.Errorf("payload decodes to %+v (%v), want %+v", got, err, m)
	}

	other := m
	other.ID = "magic-link:tok-other"
	if err := mail.Enqueue(ctx(t), js, other); err != nil {
		t.Fatalf("Enqueue other: %v", err)
	}
	if n := mailStreamMsgs(t, js); n != 2 {
		t.Fatalf("after another mail %s holds %d messages, want 2", subjects.MailStream, n)
	}
}
