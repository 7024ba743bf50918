// Package mail delivers jetfleet's outgoing mail (magic links, digests,
// receipts). It is the one package that talks to the outside mail system:
// an SMTP sender for real installs, an Outbox sender that keeps mail in a
// JetStream KV bucket for development installs without an SMTP server, and
// Enqueue, which puts a mail on the MAIL work queue for the mail worker role
// (workers/mail) to deliver through one of them.
//
// Its tests run against mailtest, a real SMTP server on loopback.
package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// Sender delivers one mail. Send is called at least once per mail: a sender
// must make a repeat harmless or at least recognisable (the SMTP sender gives
// every attempt of one mail the same Message-ID).
type Sender interface {
	Send(ctx context.Context, m subjects.Mail) error
}

// ErrRejected marks a mail that the mail server refused for good (an SMTP
// 5xx reply to the mail itself, such as an unknown recipient): sending it
// again cannot succeed. Other failures — the server unreachable, a 4xx
// reply, a failed login — may pass and are returned without it.
var ErrRejected = errors.New("mail rejected by the mail server")

// ErrInvalid marks a mail that failed subjects.Mail.Validate.
var ErrInvalid = errors.New("invalid mail")

// ErrNotFound is returned by Outbox.Get for a key that is not, or no longer,
// in the outbox.
var ErrNotFound = errors.New("mail not found in outbox")

// Enqueuer is Enqueue on js, for the services that take a mail function.
func Enqueuer(js jetstream.JetStream) func(context.Context, subjects.Mail) error {
	return func(ctx context.Context, m subjects.Mail) error { return Enqueue(ctx, js, m) }
}

// Enqueue validates m and publishes it on the MAIL work queue. The publish
// carries m.ID as its Nats-Msg-Id, so enqueueing the same mail again within
// the stream's duplicate window (a retried request, a redelivered job) does
// not send it twice.
func Enqueue(ctx context.Context, js jetstream.JetStream, m subjects.Mail) error {
	if err := Validate(m); err != nil {
		return fmt.Errorf("enqueue mail %q: %w", m.ID, err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("enqueue mail %q: encode: %w", m.ID, err)
	}
	if _, err := js.Publish(ctx, subjects.MailSend, data, jetstream.WithMsgID(m.ID)); err != nil {
		return fmt.Errorf("enqueue mail %q: publish on %s: %w", m.ID, subjects.MailSend, err)
	}
	return nil
}

// Validate runs m.Validate and returns its problems on one line, wrapped in
// ErrInvalid: the text ends up in logs and in DLQ headers, where a line
// break would split one event.
func Validate(m subjects.Mail) error {
	err := m.Validate()
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.ReplaceAll(err.Error(), "\n", "; "))
}
