// Package mail is the mail worker role: it takes each mail off the MAIL work
// queue (subjects.MailStream, durable consumer subjects.MailConsumer) and
// delivers it through a Sender from internal/mail — SMTP in production, the
// KV outbox in development. Retries, dead-lettering and metrics are the
// shared runtime's (workers/consume); this package only decides what a
// failure means.
package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	mailer "jetfleet/internal/mail"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Role delivers mail.
type Role struct {
	sender mailer.Sender
	log    *slog.Logger
}

// New returns the role delivering through sender.
func New(sender mailer.Sender, log *slog.Logger) *Role {
	return &Role{sender: sender, log: log}
}

// Handle delivers the subjects.Mail in msg. A payload that is not a valid
// mail, and a mail the server refused for good, are permanent failures (the
// runtime dead-letters them with the reason); any other failure is returned
// as is for the runtime to retry with backoff.
func (r *Role) Handle(ctx context.Context, msg jetstream.Msg) error {
	var m subjects.Mail
	if err := json.Unmarshal(msg.Data(), &m); err != nil {
		return consume.Permanentf("decode mail: payload on %s is not a JSON mail: %v", msg.Subject(), err)
	}
	if err := mailer.Validate(m); err != nil {
		return consume.Permanent(err)
	}
	if err := r.sender.Send(ctx, m); err != nil {
		if errors.Is(err, mailer.ErrRejected) || errors.Is(err, mailer.ErrInvalid) {
			return consume.Permanent(err)
		}
		return err
	}
	r.log.Info("mail sent", "id", m.ID, "to", mailer.MaskAddress(m.To))
	return nil
}

// Roles is the mail role. smtp is where mail goes; with no Host the mail is
// kept in the development outbox (subjects.OutboxBucket) instead.
func Roles(smtp mailer.SMTPConfig) []consume.Role {
	return []consume.Role{{
		Name: "mail",
		Consumer: consume.Config{
			Role: "mail", Stream: subjects.MailStream, Consumer: subjects.MailConsumer,
			Batch: 32, Concurrency: 8, BackoffMin: time.Second, BackoffMax: 5 * time.Minute,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			sender, err := newSender(ctx, d, smtp)
			if err != nil {
				return nil, err
			}
			return New(sender, d.Log.With("role", "mail")).Handle, nil
		},
	}}
}

// newSender is SMTP when smtp has a Host, else the development outbox.
func newSender(ctx context.Context, d consume.Deps, smtp mailer.SMTPConfig) (mailer.Sender, error) {
	if smtp.Host == "" {
		kv, err := d.JS.KeyValue(ctx, subjects.OutboxBucket)
		if err != nil {
			return nil, fmt.Errorf("open outbox: %w", err)
		}
		d.Log.Info("no SMTP_HOST: mail is kept in the outbox, not sent")
		return mailer.NewOutbox(kv), nil
	}
	return mailer.NewSMTP(smtp)
}
