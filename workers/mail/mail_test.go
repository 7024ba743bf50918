package mail_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	mailer "jetfleet/internal/mail"
	"jetfleet/internal/mail/mailtest"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/mail"
)

const wait = 15 * time.Second

// world is a provisioned JetStream server, a mailtest SMTP server and the
// mail role running on the real consumer runtime between them.
type world struct {
	js   jetstream.JetStream
	smtp *mailtest.Server
	logs *testenv.Buffer
}

func start(t *testing.T) *world {
	t.Helper()
	_, js := testenv.JetStream(t)
	if err := subjects.Provision(testenv.Context(t, wait), js, subjects.Options{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	srv := mailtest.Start(t)
	host, port := srv.Addr()
	sender, err := mailer.NewSMTP(mailer.SMTPConfig{
		Host: host, Port: port, TLS: mailer.TLSNone, From: "Jetfleet <no-reply@example.com>", Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	logs := &testenv.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	role := mail.New(sender, logger)

	c := consume.New(js, consume.Config{
		Role:       "mail",
		Stream:     subjects.MailStream,
		Consumer:   subjects.MailConsumer,
		FetchWait:  200 * time.Millisecond,
		BackoffMin: 20 * time.Millisecond,
		BackoffMax: 100 * time.Millisecond,
	}, role.Handle, consume.NewMetrics(prometheus.NewRegistry()), logger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of cancel")
		}
	})
	return &world{js: js, smtp: srv, logs: logs}
}

func (w *world) enqueue(t *testing.T, m subjects.Mail) {
	t.Helper()
	if err := mailer.Enqueue(testenv.Context(t, wait), w.js, m); err != nil {
		t.Fatalf("Enqueue %s: %v", m.ID, err)
	}
}

func (w *world) publishRaw(t *testing.T, payload string) {
	t.Helper()
	if _, err := w.js.Publish(testenv.Context(t, wait), subjects.MailSend, []byte(payload)); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// settled reports whether the MAIL stream is empty and the consumer has
// nothing pending or unacknowledged: every mail was finished (acked or
// dead-lettered) and none will come again.
func (w *world) settled(t *testing.T) bool {
	t.Helper()
	ctx := testenv.Context(t, wait)
	cons, err := w.js.Consumer(ctx, subjects.MailStream, subjects.MailConsumer)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := w.js.Stream(ctx, subjects.MailStream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ci.NumPending == 0 && ci.NumAckPending == 0 && si.State.Msgs == 0
}

func (w *world) deadLetters(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := testenv.Context(t, wait)
	s, err := w.js.Stream(ctx, subjects.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("DLQ seq %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

func signIn(id, to string) subjects.Mail {
	return subjects.Mail{
		ID:      id,
		To:      to,
		Subject: "Your sign-in link",
		Text:    "Open https://jetfleet.example/login/secret-token to sign in.",
		HTML:    `<p><a href="https://jetfleet.example/login/secret-token">Sign in</a></p>`,
	}
}

func TestEnqueuedMailIsDeliveredOnce(t *testing.T) {
	w := start(t)
	m := signIn("magic-link:1", "ada@example.com")
	w.enqueue(t, m)

	testenv.Eventually(t, wait, "mail delivered", func() bool { return len(w.smtp.Messages()) > 0 })
	testenv.Eventually(t, wait, "MAIL stream drained and acknowledged", func() bool { return w.settled(t) })

	msgs := w.smtp.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if len(got.To) != 1 || got.To[0] != "ada@example.com" || got.Header.Get("Subject") != m.Subject {
		t.Errorf("delivered to %q with subject %q", got.To, got.Header.Get("Subject"))
	}
	if !strings.Contains(got.Text(), "secret-token") || !strings.Contains(got.HTML(), "secret-token") {
		t.Errorf("delivered body lacks the link: text %q, html %q", got.Text(), got.HTML())
	}
	if dl := w.deadLetters(t); len(dl) != 0 {
		t.Errorf("DLQ holds %d messages, want 0", len(dl))
	}

	logs := w.logs.String()
	if !strings.Contains(logs, "mail sent") || !strings.Contains(logs, "id=magic-link:1") || !strings.Contains(logs, "to=a***@example.com") {
		t.Errorf("no 'mail sent' line with id and masked recipient in logs:\n%s", logs)
	}
	if strings.Contains(logs, "ada@example.com") || strings.Contains(logs, "secret-token") {
		t.Errorf("logs reveal the recipient or the body:\n%s", logs)
	}
}

func TestMailToARejectedRecipientIsDeadLetteredWithTheReason(t *testing.T) {
	w := start(t)
	w.smtp.Reject("gone@example.com")
	w.enqueue(t, signIn("magic-link:2", "gone@example.com"))

	testenv.Eventually(t, wait, "rejected mail dead-lettered", func() bool { return len(w.deadLetters(t)) > 0 })
	testenv.Eventually(t, wait, "MAIL stream settled", func() bool { return w.settled(t) })

	dl := w.deadLetters(t)
	if len(dl) != 1 {
		t.Fatalf("DLQ holds %d messages, want 1", len(dl))
	}
	reason := dl[0].Header.Get(subjects.HeaderDLQError)
	if !strings.Contains(reason, "550") || !strings.Contains(reason, mailer.ErrRejected.Error()) {
		t.Errorf("%s = %q, want the 550 rejection", subjects.HeaderDLQError, reason)
	}
	if strings.Contains(reason, "gone@example.com") || strings.Contains(w.logs.String(), "gone@example.com") {
		t.Errorf("the reason or the logs reveal the recipient: %q\n%s", reason, w.logs.String())
	}
	// A rejection is permanent: dead-lettered on the first delivery, not
	// after the retries.
	if got := dl[0].Header.Get(subjects.HeaderDLQDeliveries); got != "1" {
		t.Errorf("%s = %q, want 1", subjects.HeaderDLQDeliveries, got)
	}
	if got := dl[0].Header.Get(subjects.HeaderDLQSubject); got != subjects.MailSend {
		t.Errorf("%s = %q, want %s", subjects.HeaderDLQSubject, got, subjects.MailSend)
	}
	if n := w.smtp.Refusals(); n != 1 {
		t.Errorf("server refused %d times, want 1", n)
	}
	if n := len(w.smtp.Messages()); n != 0 {
		t.Errorf("server got %d messages, want 0", n)
	}
}

func TestBadPayloadsAreDeadLetteredAndTheNextMailStillArrives(t *testing.T) {
	w := start(t)
	w.publishRaw(t, `{"id": "broken", "to": `)
	w.publishRaw(t, `{"id": "no-recipient", "subject": "Hi", "text": "Hello"}`)
	w.enqueue(t, signIn("magic-link:3", "ada@example.com"))

	testenv.Eventually(t, wait, "good mail delivered", func() bool { return len(w.smtp.Messages()) > 0 })
	testenv.Eventually(t, wait, "both bad payloads dead-lettered", func() bool { return len(w.deadLetters(t)) == 2 })
	testenv.Eventually(t, wait, "MAIL stream settled", func() bool { return w.settled(t) })

	if n := len(w.smtp.Messages()); n != 1 {
		t.Errorf("server got %d messages, want 1", n)
	}
	reasons := map[string]string{} // payload → reason
	for _, m := range w.deadLetters(t) {
		reasons[string(m.Data)] = m.Header.Get(subjects.HeaderDLQError)
		if got := m.Header.Get(subjects.HeaderDLQDeliveries); got != "1" {
			t.Errorf("bad payload %q dead-lettered after %s deliveries, want 1", m.Data, got)
		}
	}
	if r := reasons[`{"id": "broken", "to": `]; !strings.Contains(r, "not a JSON mail") {
		t.Errorf("malformed JSON dead-lettered with reason %q", r)
	}
	if r := reasons[`{"id": "no-recipient", "subject": "Hi", "text": "Hello"}`]; !strings.Contains(r, "invalid mail") || !strings.Contains(r, "to:") {
		t.Errorf("mail without recipient dead-lettered with reason %q", r)
	}
}

func TestTemporaryFailureIsRetriedAndDeliveredOnceTheServerAccepts(t *testing.T) {
	w := start(t)
	w.smtp.FailNext(2)
	w.enqueue(t, signIn("magic-link:4", "ada@example.com"))

	testenv.Eventually(t, wait, "mail delivered after the 451s", func() bool { return len(w.smtp.Messages()) > 0 })
	testenv.Eventually(t, wait, "MAIL stream settled", func() bool { return w.settled(t) })

	if n := w.smtp.Refusals(); n != 2 {
		t.Errorf("server refused %d times, want 2", n)
	}
	if n := len(w.smtp.Messages()); n != 1 {
		t.Errorf("server got %d messages, want 1", n)
	}
	if dl := w.deadLetters(t); len(dl) != 0 {
		t.Errorf("DLQ holds %d messages, want 0", len(dl))
	}
}
