package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	mailer "jetfleet/internal/mail"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/deadletter"
	"jetfleet/workers/mail"
)

// allRoles lists every worker role this binary can run. Each product lists
// its roles in its own roles_<product>.go.
func allRoles() []role {
	return slices.Concat(coreRoles(), counterRoles(), enricherRoles(), trackerRoles(), eventsRoles(), mediaRoles())
}

// coreRoles serve every product.
func coreRoles() []role {
	return []role{{
		// Dead-letters messages the server stopped redelivering because the
		// worker holding them died every time (see deadletter.Sweep).
		name: "dlq-sweeper",
		run: func(ctx context.Context, d roleDeps, _ *consume.Metrics) error {
			return deadletter.Sweep(ctx, d.js.Conn(), d.js, d.log.With("role", "dlq-sweeper"))
		},
	}, {
		name: "mail",
		consumer: consume.Config{
			Role: "mail", Stream: subjects.MailStream, Consumer: subjects.MailConsumer,
			Batch: 32, Concurrency: 8, BackoffMin: time.Second, BackoffMax: 5 * time.Minute,
		},
		build: func(ctx context.Context, d roleDeps) (consume.Handler, error) {
			sender, err := mailSender(ctx, d)
			if err != nil {
				return nil, err
			}
			return mail.New(sender, d.log.With("role", "mail")).Handle, nil
		},
	}}
}

// mailSender is SMTP when SMTP_HOST is set, else the development outbox.
func mailSender(ctx context.Context, d roleDeps) (mailer.Sender, error) {
	c := d.cfg
	if c.SMTPHost == "" {
		kv, err := d.js.KeyValue(ctx, subjects.OutboxBucket)
		if err != nil {
			return nil, fmt.Errorf("open outbox: %w", err)
		}
		d.log.Info("no SMTP_HOST: mail is kept in the outbox, not sent")
		return mailer.NewOutbox(kv), nil
	}
	return mailer.NewSMTP(mailer.SMTPConfig{
		Host: c.SMTPHost, Port: c.SMTPPort, Username: c.SMTPUsername, Password: c.SMTPPassword,
		From: c.SMTPFrom, TLS: c.SMTPTLS,
	})
}
