package mail_test

import (
	"context"
	"errors"
	"log/slog"
	"mime"
	"net"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/mail"
	"jetfleet/internal/mail/mailtest"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// smtpTo returns an SMTP sender pointed at srv, with cfg's non-zero fields
// applied.
func smtpTo(t *testing.T, srv *mailtest.Server, cfg mail.SMTPConfig) *mail.SMTP {
	t.Helper()
	cfg.Host, cfg.Port = srv.Addr()
	cfg.TLS = mail.TLSNone
	if cfg.From == "" {
		cfg.From = "Jetfleet <no-reply@example.com>"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	s, err := mail.NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return s
}

func signInMail() subjects.Mail {
	return subjects.Mail{
		ID:      "magic-link:tok-123",
		To:      "Ada Lovelace <ada@example.com>",
		Subject: "Your sign-in link – Jetfleet",
		Text:    "Open https://jetfleet.example/login/abc to sign in.\nIt works for 15 minutes.",
		HTML:    `<p>Open <a href="https://jetfleet.example/login/abc">this link</a> to sign in.</p>`,
	}
}

func ctx(t *testing.T) context.Context { return testenv.Context(t, 30*time.Second) }

func TestSMTPDeliversTextAndHTMLWithHeaders(t *testing.T) {
	srv := mailtest.Start(t)
	s := smtpTo(t, srv, mail.SMTPConfig{})
	m := signInMail()

	before := time.Now().Truncate(time.Second)
	if err := s.Send(ctx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	after := time.Now()

	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "no-reply@example.com" {
		t.Errorf("envelope from = %q", got.From)
	}
	if len(got.To) != 1 || got.To[0] != "ada@example.com" {
		t.Errorf("envelope to = %q", got.To)
	}
	from, err := got.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "no-reply@example.com" || from[0].Name != "Jetfleet" {
		t.Errorf("From header = %q (%v)", got.Header.Get("From"), err)
	}
	to, err := got.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "ada@example.com" {
		t.Errorf("To header = %q (%v)", got.Header.Get("To"), err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(got.Header.Get("Subject"))
	if err != nil || subject != m.Subject {
		t.Errorf("Subject = %q (%v), want %q", subject, err, m.Subject)
	}
	if id := got.Header.Get("Message-Id"); id != s.MessageID(m.ID) {
		t.Errorf("Message-ID = %q, want %q", id, s.MessageID(m.ID))
	}
	if id := s.MessageID(m.ID); !strings.HasSuffix(id, "@example.com>") || strings.Contains(id, "tok-123") {
		t.Errorf("MessageID(%q) = %q, want a hash at the From domain", m.ID, id)
	}
	date, err := got.Header.Date()
	if err != nil || date.Before(before) || date.After(after) {
		t.Errorf("Date = %q (%v), want the time of sending", got.Header.Get("Date"), err)
	}
	if text := strings.ReplaceAll(got.Text(), "\r\n", "\n"); text != m.Text {
		t.Errorf("text part = %q, want %q", text, m.Text)
	}
	if html := got.HTML(); html != m.HTML {
		t.Errorf("html part = %q, want %q", html, m.HTML)
	}
}

func TestSMTPMailWithoutHTMLHasOnlyATextPart(t *testing.T) {
	srv := mailtest.Start(t)
	m := signInMail()
	m.HTML = ""
	if err := smtpTo(t, srv, mail.SMTPConfig{}).Send(ctx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	if parts := msgs[0].Parts; len(parts) != 1 || parts[0].ContentType != "text/plain" {
		t.Fatalf("parts = %+v, want one text/plain part", parts)
	}
}

func TestSMTPResendOfAMailCarriesTheSameMessageID(t *testing.T) {
	srv := mailtest.Start(t)
	s := smtpTo(t, srv, mail.SMTPConfig{})
	m := signInMail()
	other := m
	other.ID = "magic-link:tok-456"
	for _, mm := range []subjects.Mail{m, m, other} {
		if err := s.Send(ctx(t), mm); err != nil {
			t.Fatalf("Send %s: %v", mm.ID, err)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != 3 {
		t.Fatalf("server got %d messages, want 3", len(msgs))
	}
	first, resend, third := msgs[0].Header.Get("Message-Id"), msgs[1].Header.Get("Message-Id"), msgs[2].Header.Get("Message-Id")
	if first != resend {
		t.Errorf("resend Message-ID %q differs from first %q", resend, first)
	}
	if third == first {
		t.Errorf("another mail got the same Message-ID %q", third)
	}
}

func TestSMTPLogsInWithUsernameAndPassword(t *testing.T) {
	srv := mailtest.Start(t, mailtest.WithAuth("mailer", "s3cret"))
	s := smtpTo(t, srv, mail.SMTPConfig{Username: "mailer", Password: "s3cret"})
	if err := s.Send(ctx(t), signInMail()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || msgs[0].Auth != "mailer" {
		t.Fatalf("messages = %d, want one sent after logging in as mailer", len(msgs))
	}
}

func TestSMTPWrongPasswordFailsWithoutSendingAndIsNotARejection(t *testing.T) {
	srv := mailtest.Start(t, mailtest.WithAuth("mailer", "s3cret"))
	s := smtpTo(t, srv, mail.SMTPConfig{Username: "mailer", Password: "wrong-password"})
	err := s.Send(ctx(t), signInMail())
	if err == nil {
		t.Fatal("Send with a wrong password succeeded")
	}
	if !strings.Contains(err.Error(), "535") {
		t.Errorf("error %q does not carry the server's 535", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error %q reveals the password", err)
	}
	// A bad login is the installation's fault, not the mail's: it is retried
	// until an operator fixes SMTP_PASSWORD.
	if errors.Is(err, mail.ErrRejected) {
		t.Errorf("error %q wraps ErrRejected", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server got %d messages, want 0", n)
	}
}

func TestSMTPRecipientRejectedWith550IsErrRejected(t *testing.T) {
	srv := mailtest.Start(t)
	srv.Reject("ada@example.com")
	err := smtpTo(t, srv, mail.SMTPConfig{}).Send(ctx(t), signInMail())
	if !errors.Is(err, mail.ErrRejected) {
		t.Fatalf("Send to a rejected recipient: err = %v, want ErrRejected", err)
	}
	if !strings.Contains(err.Error(), "550") {
		t.Errorf("error %q does not carry the server's 550", err)
	}
	// The error ends up in logs and DLQ headers: the recipient is masked.
	if strings.Contains(err.Error(), "ada@example.com") || !strings.Contains(err.Error(), "a***@example.com") {
		t.Errorf("error %q does not mask the recipient", err)
	}
}

func TestSMTPTemporaryFailureWith451IsNotErrRejected(t *testing.T) {
	srv := mailtest.Start(t)
	srv.FailNext(1)
	s := smtpTo(t, srv, mail.SMTPConfig{})
	err := s.Send(ctx(t), signInMail())
	if err == nil {
		t.Fatal("Send during a temporary failure succeeded")
	}
	if errors.Is(err, mail.ErrRejected) {
		t.Fatalf("451 reported as ErrRejected: %v", err)
	}
	if err := s.Send(ctx(t), signInMail()); err != nil {
		t.Fatalf("Send once the server accepts again: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("server got %d messages, want 1", n)
	}
}

func TestSMTPUnreachableServerIsNotErrRejected(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	s, err := mail.NewSMTP(mail.SMTPConfig{
		Host: "127.0.0.1", Port: port, TLS: mail.TLSNone, From: "no-reply@example.com", Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(ctx(t), signInMail())
	if err == nil || errors.Is(err, mail.ErrRejected) {
		t.Fatalf("Send to a closed port: err = %v, want a plain error", err)
	}
}

func TestSMTPSendOfInvalidMailIsErrInvalid(t *testing.T) {
	srv := mailtest.Start(t)
	m := signInMail()
	m.To = "not an address"
	err := smtpTo(t, srv, mail.SMTPConfig{}).Send(ctx(t), m)
	if !errors.Is(err, mail.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("server got %d messages, want 0", n)
	}
}

func TestSMTPConfigValidateNamesTheSetting(t *testing.T) {
	valid := mail.SMTPConfig{Host: "smtp.example.com", From: "no-reply@example.com"}
	tests := []struct {
		name string
		edit func(*mail.SMTPConfig)
		want string // "" for valid
	}{
		{"defaults are valid", func(*mail.SMTPConfig) {}, ""},
		{"credentials over starttls are valid", func(c *mail.SMTPConfig) { c.Username, c.Password = "u", "p" }, ""},
		{"credentials without TLS to localhost are valid", func(c *mail.SMTPConfig) {
			c.Host, c.TLS, c.Username, c.Password = "127.0.0.1", "none", "u", "p"
		}, ""},
		{"implicit tls is valid", func(c *mail.SMTPConfig) { c.TLS, c.Port = "tls", 465 }, ""},
		{"host missing", func(c *mail.SMTPConfig) { c.Host = "" }, "SMTP_HOST"},
		{"host with port", func(c *mail.SMTPConfig) { c.Host = "smtp.example.com:587" }, "SMTP_HOST"},
		{"host as URL", func(c *mail.SMTPConfig) { c.Host = "smtp://smtp.example.com" }, "SMTP_HOST"},
		{"port out of range", func(c *mail.SMTPConfig) { c.Port = 70000 }, "SMTP_PORT"},
		{"from missing", func(c *mail.SMTPConfig) { c.From = "" }, "SMTP_FROM"},
		{"from not an address", func(c *mail.SMTPConfig) { c.From = "jetfleet" }, "SMTP_FROM"},
		{"unknown tls mode", func(c *mail.SMTPConfig) { c.TLS = "ssl" }, "SMTP_TLS"},
		{"username without password", func(c *mail.SMTPConfig) { c.Username = "u" }, "SMTP_USERNAME/SMTP_PASSWORD"},
		{"password without username", func(c *mail.SMTPConfig) { c.Password = "p" }, "SMTP_USERNAME/SMTP_PASSWORD"},
		{"password in the clear to a remote host", func(c *mail.SMTPConfig) {
			c.TLS, c.Username, c.Password = "none", "u", "p"
		}, "SMTP_TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
			}
			if tt.want != "" {
				if _, err := mail.NewSMTP(cfg); err == nil {
					t.Fatal("NewSMTP accepted an invalid configuration")
				}
			}
		})
	}
}

func TestSMTPConfigLogsWithoutThePassword(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	log.Info("smtp", "config", mail.SMTPConfig{Host: "smtp.example.com", Username: "mailer", Password: "s3cret", From: "a@example.com"})
	if strings.Contains(b.String(), "s3cret") {
		t.Fatalf("log line reveals the password: %s", b.String())
	}
	if !strings.Contains(b.String(), "password_set=true") {
		t.Fatalf("log line does not say a password is set: %s", b.String())
	}
}

func TestMaskAddressKeepsFirstCharacterAndDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ada@example.com", "a***@example.com"},
		{"Ada Lovelace <ada@example.com>", "a***@example.com"},
		{"élodie@example.fr", "é***@example.fr"},
		{"x@example.com", "x***@example.com"},
		{"not an address", "***"},
		{"", "***"},
	}
	for _, tt := range tests {
		if got := mail.MaskAddress(tt.in); got != tt.want {
			t.Errorf("MaskAddress(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The digest's one-click unsubscribe (RFC 8058) travels as the two header
// fields mail programs look for; a URL that would break the header is
// refused.
func TestSMTPCarriesOneClickUnsubscribeHeaders(t *testing.T) {
	srv := mailtest.Start(t)
	m := signInMail()
	m.Unsubscribe = "https://jetfleet.example/api/tracker/unsubscribe/tok"
	if err := smtpTo(t, srv, mail.SMTPConfig{}).Send(ctx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.Messages()[0].Header
	if v := got.Get("List-Unsubscribe"); v != "<"+m.Unsubscribe+">" {
		t.Errorf("List-Unsubscribe = %q", v)
	}
	if v := got.Get("List-Unsubscribe-Post"); v != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe-Post = %q", v)
	}
	for _, bad := range []string{"https://x>\r\nBcc: mallory@example.com", "mailto:x@example.com", "javascript:alert(1)"} {
		m.Unsubscribe = bad
		if err := smtpTo(t, srv, mail.SMTPConfig{}).Send(ctx(t), m); !errors.Is(err, mail.ErrInvalid) {
			t.Errorf("unsubscribe %q: err = %v, want ErrInvalid", bad, err)
		}
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("server got %d messages, want only the valid one", n)
	}
}
