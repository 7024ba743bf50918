package mailtest_test

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"jetfleet/internal/mail/mailtest"
)

const multipartMail = "From: Jetfleet <no-reply@example.com>\r\n" +
	"To: ada@example.com\r\n" +
	"Subject: Hello\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=b1\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Caf=C3=A9 at 10\r\n" +
	"--b1\r\n" +
	"Content-Type: text/html; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+Q2Fmw6k8L3A+\r\n" +
	"--b1--\r\n"

func dial(t *testing.T, srv *mailtest.Server) *smtp.Client {
	t.Helper()
	host, port := srv.Addr()
	c, err := smtp.Dial(net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("dial mailtest: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestAcceptedMailIsRecordedWithEnvelopeHeadersAndDecodedParts(t *testing.T) {
	srv := mailtest.Start(t)
	c := dial(t, srv)
	if err := c.SendMail("no-reply@example.com", []string{"ada@example.com"}, strings.NewReader(multipartMail)); err != nil {
		t.Fatalf("send: %v", err)
	}

	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("recorded %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.From != "no-reply@example.com" || len(m.To) != 1 || m.To[0] != "ada@example.com" {
		t.Errorf("envelope = %q → %q", m.From, m.To)
	}
	if got := m.Header.Get("Subject"); got != "Hello" {
		t.Errorf("Subject = %q", got)
	}
	if got := m.Text(); got != "Café at 10" {
		t.Errorf("Text() = %q", got)
	}
	if got := m.HTML(); got != "<p>Café</p>" {
		t.Errorf("HTML() = %q", got)
	}
}

func TestLoginWithWrongPasswordIsRefusedWith535(t *testing.T) {
	srv := mailtest.Start(t, mailtest.WithAuth("mailer", "s3cret"))
	c := dial(t, srv)
	err := c.Auth(sasl.NewPlainClient("", "mailer", "wrong"))
	if code := smtpCode(err); code != 535 {
		t.Fatalf("AUTH with a wrong password: err = %v (code %d), want 535", err, code)
	}
	if err := c.Auth(sasl.NewPlainClient("", "mailer", "s3cret")); err != nil {
		t.Fatalf("AUTH with the right password: %v", err)
	}
	if err := c.SendMail("no-reply@example.com", []string{"ada@example.com"}, strings.NewReader(multipartMail)); err != nil {
		t.Fatalf("send after login: %v", err)
	}
	if msgs := srv.Messages(); len(msgs) != 1 || msgs[0].Auth != "mailer" {
		t.Fatalf("messages = %+v, want one sent as mailer", msgs)
	}
}

func TestMailWithoutLoginIsRefusedWhenAuthIsRequired(t *testing.T) {
	srv := mailtest.Start(t, mailtest.WithAuth("mailer", "s3cret"))
	c := dial(t, srv)
	err := c.Mail("no-reply@example.com", nil)
	if code := smtpCode(err); code/100 != 5 {
		t.Fatalf("MAIL without AUTH: err = %v, want a 5xx", err)
	}
}

func TestRecipientRefusals(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(*mailtest.Server)
		wantCode int
	}{
		{"rejected recipient gets 550", func(s *mailtest.Server) { s.Reject("Gone@Example.com") }, 550},
		{"temporary failure gets 451", func(s *mailtest.Server) { s.FailNext(1) }, 451},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.Start(t)
			tt.setup(srv)
			c := dial(t, srv)
			if err := c.Mail("no-reply@example.com", nil); err != nil {
				t.Fatal(err)
			}
			err := c.Rcpt("gone@example.com", nil)
			if code := smtpCode(err); code != tt.wantCode {
				t.Fatalf("RCPT: err = %v (code %d), want %d", err, code, tt.wantCode)
			}
			if got := srv.Refusals(); got != 1 {
				t.Errorf("Refusals() = %d, want 1", got)
			}
		})
	}
}

func TestTemporaryFailuresEndAfterTheGivenCount(t *testing.T) {
	srv := mailtest.Start(t)
	srv.FailNext(2)
	c := dial(t, srv)
	for i := range 2 {
		err := c.SendMail("no-reply@example.com", []string{"ada@example.com"}, strings.NewReader(multipartMail))
		if code := smtpCode(err); code != 451 {
			t.Fatalf("attempt %d: err = %v, want 451", i+1, err)
		}
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SendMail("no-reply@example.com", []string{"ada@example.com"}, strings.NewReader(multipartMail)); err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("recorded %d messages, want 1", n)
	}
}
