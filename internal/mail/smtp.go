package mail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"

	"jetfleet/subjects"
)

// TLS modes of SMTPConfig.TLS.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS, which must succeed
	TLSImplicit = "tls"      // TLS from the first byte (SMTPS, usually port 465)
	TLSNone     = "none"     // no encryption: a relay on the same host or a trusted network
)

// DefaultSMTPTimeout bounds connecting and every SMTP command when
// SMTPConfig.Timeout is zero.
const DefaultSMTPTimeout = 15 * time.Second

// SMTPConfig configures the SMTP sender. main fills it from the SMTP_*
// settings; Validate names them.
type SMTPConfig struct {
	Host string // SMTP_HOST: name or IP address, without a port
	// Port is SMTP_PORT; zero means the usual port of the TLS mode: 587 for
	// starttls, 465 for tls, 25 for none.
	Port int
	// Username and Password (SMTP_USERNAME, SMTP_PASSWORD) log in with SMTP
	// AUTH; both empty means no login.
	Username, Password string
	// From is SMTP_FROM, the sender of every mail: "no-reply@example.com" or
	// "Jetfleet <no-reply@example.com>".
	From string
	// TLS is SMTP_TLS: "starttls" (the default when empty), "tls" or "none".
	TLS string
	// Timeout is SMTP_TIMEOUT; zero means DefaultSMTPTimeout.
	Timeout time.Duration
}

// tlsMode returns the TLS mode with the default applied.
func (c SMTPConfig) tlsMode() string {
	if c.TLS == "" {
		return TLSStartTLS
	}
	return strings.ToLower(c.TLS)
}

func (c SMTPConfig) port() int {
	if c.Port != 0 {
		return c.Port
	}
	switch c.tlsMode() {
	case TLSImplicit:
		return 465
	case TLSNone:
		return 25
	default:
		return 587
	}
}

// Validate reports every problem with the configuration, naming the setting.
func (c SMTPConfig) Validate() error {
	var errs []error
	host := strings.TrimSpace(c.Host)
	switch {
	case host == "":
		errs = append(errs, errors.New("SMTP_HOST: required"))
	case strings.Contains(host, "://") || strings.ContainsAny(host, " /"):
		errs = append(errs, fmt.Errorf("SMTP_HOST: %q is not a host name; give the name or address only", c.Host))
	default:
		if _, _, err := net.SplitHostPort(host); err == nil {
			errs = append(errs, fmt.Errorf("SMTP_HOST: %q includes a port; set SMTP_PORT instead", c.Host))
		}
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("SMTP_PORT: %d is not a TCP port (1-65535, or 0 for the default of SMTP_TLS)", c.Port))
	}
	if strings.TrimSpace(c.From) == "" {
		errs = append(errs, errors.New("SMTP_FROM: required"))
	} else if _, err := netmail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("SMTP_FROM: %q is not an email address", c.From))
	}
	mode := c.tlsMode()
	switch mode {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		errs = append(errs, fmt.Errorf("SMTP_TLS: %q is not one of starttls, tls, none", c.TLS))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("SMTP_USERNAME/SMTP_PASSWORD: set both to log in, or neither"))
	}
	if mode == TLSNone && c.Username != "" && !isLoopback(host) {
		errs = append(errs, fmt.Errorf("SMTP_TLS: none would send SMTP_PASSWORD unencrypted to SMTP_HOST %q; use starttls or tls, or a relay on localhost", c.Host))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("SMTP_TIMEOUT: %v is negative", c.Timeout))
	}
	return errors.Join(errs...)
}

// LogValue lets the configuration be logged without its password.
func (c SMTPConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host),
		slog.Int("port", c.port()),
		slog.String("tls", c.tlsMode()),
		slog.String("from", c.From),
		slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != ""),
		slog.Duration("timeout", c.Timeout),
	)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// SMTP sends mail through an SMTP server (a relay or a provider such as SES,
// Postmark or Mailgun), one connection per mail. It is safe for concurrent
// use.
type SMTP struct {
	client *gomail.Client
	from   string
	domain string // of the From address; right-hand side of Message-IDs
}

var _ Sender = (*SMTP)(nil)

// NewSMTP validates cfg and prepares a sender. It does not connect: a mail
// server that is down at start only delays mail.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("smtp config: %w", err)
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil { // checked by Validate
		return nil, fmt.Errorf("smtp config: SMTP_FROM: %w", err)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultSMTPTimeout
	}
	opts := []gomail.Option{
		gomail.WithPort(cfg.port()),
		gomail.WithTimeout(timeout),
	}
	mode := cfg.tlsMode()
	switch mode {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if cfg.Username != "" {
		// Over TLS, let go-mail pick the strongest mechanism the server
		// offers. Without TLS, Validate allowed a login only to a relay on
		// loopback, where PLAIN is what such relays offer.
		auth := gomail.SMTPAuthAutoDiscover
		if mode == TLSNone {
			auth = gomail.SMTPAuthPlainNoEnc
		}
		opts = append(opts,
			gomail.WithSMTPAuth(auth),
			gomail.WithUsername(cfg.Username),
			gomail.WithPassword(cfg.Password),
		)
	}
	client, err := gomail.NewClient(strings.TrimSpace(cfg.Host), opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	return &SMTP{client: client, from: cfg.From, domain: strings.ToLower(domain)}, nil
}

// MessageID returns the Message-ID header every attempt to send mail id
// carries: a hash of the id at the domain of the From address, so a resend
// is recognisable as the same mail without revealing the id itself.
func (s *SMTP) MessageID(id string) string {
	return "<" + s.messageID(id) + ">"
}

func (s *SMTP) messageID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16]) + "@" + s.domain
}

// Send delivers m: its text, and its HTML as an alternative when set. An
// error wrapping ErrRejected means the server refused the mail for good;
// any other error may pass on a later attempt.
func (s *SMTP) Send(ctx context.Context, m subjects.Mail) error {
	if err := Validate(m); err != nil {
		return fmt.Errorf("smtp send mail %q: %w", m.ID, err)
	}
	msg, err := s.message(m)
	if err != nil {
		return fmt.Errorf("smtp send mail %q: build message: %w", m.ID, err)
	}
	err = s.client.DialAndSendWithContext(ctx, msg)
	switch {
	case err == nil:
		return nil
	case msg.IsDelivered():
		// The server accepted the mail and only a later command (RSET,
		// QUIT) failed: reporting a failure would send it again.
		return nil
	case rejected(err):
		err = fmt.Errorf("%w: smtp send mail %q: %w", ErrRejected, m.ID, err)
	default:
		err = fmt.Errorf("smtp send mail %q: %w", m.ID, err)
	}
	// go-mail names the recipient in its errors, and the runtime logs them
	// and copies them into DLQ headers: mask it as the mail role's own log
	// does. The payload keeps the address for an operator who needs it.
	return redact(err, recipient(m.To))
}

// recipient returns the bare address of to.
func recipient(to string) string {
	if a, err := netmail.ParseAddress(to); err == nil {
		return a.Address
	}
	return to
}

// MaskAddress keeps enough of an address to tell mails apart in logs without
// writing it down: "ada@example.com" → "a***@example.com".
func MaskAddress(addr string) string {
	addr = recipient(addr)
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "***"
	}
	_, first := utf8.DecodeRuneInString(addr)
	return addr[:first] + "***" + addr[at:]
}

// redactedError is err with addr masked in its text; errors.Is and
// errors.As still see err.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, addr string) error {
	text := err.Error()
	if addr == "" || !strings.Contains(text, addr) {
		return err
	}
	return &redactedError{text: strings.ReplaceAll(text, addr, MaskAddress(addr)), err: err}
}

func (s *SMTP) message(m subjects.Mail) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(s.from); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(s.messageID(m.ID))
	msg.SetDate()
	// Ask auto-responders (out-of-office replies) not to answer (RFC 3834).
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	if m.Unsubscribe != "" {
		// One-click unsubscribe (RFC 8058); Validate checked the URL.
		msg.SetGenHeader(gomail.Header("List-Unsubscribe"), "<"+m.Unsubscribe+">")
		msg.SetGenHeader(gomail.Header("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click")
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// rejected reports whether err is a permanent (5xx) reply to the mail
// itself — to MAIL FROM, RCPT TO or its content. A 5xx while connecting or
// logging in is not: it says the installation is misconfigured, not that
// this mail can never be sent, so it is retried until an operator fixes it.
func rejected(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) || se.IsTemp() {
		return false
	}
	switch se.Reason {
	case gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
		return se.ErrorCode() >= 500 && se.ErrorCode() < 600
	}
	return false
}
