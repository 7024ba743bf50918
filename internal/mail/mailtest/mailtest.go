// Package mailtest runs a real SMTP server on loopback for tests of code
// that sends mail. It speaks SMTP through github.com/emersion/go-smtp, so a
// client under test goes through EHLO, AUTH, MAIL, RCPT and DATA exactly as
// with a production relay; the server records what it accepts and can be told
// to refuse recipients permanently (550) or temporarily (451).
//
// It offers no TLS: clients under test use their "none" TLS mode, and AUTH
// PLAIN is allowed in the clear because nothing leaves the machine.
package mailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one mail the server accepted.
type Message struct {
	From   string   // envelope sender (MAIL FROM)
	To     []string // envelope recipients (RCPT TO)
	Raw    []byte   // the data as received, headers and body
	Header mail.Header
	Body   []byte // the raw body after the headers, still encoded
	Parts  []Part // the leaf MIME parts, decoded; one for a single-part mail
	Auth   string // the username the client logged in with, "" without AUTH
	Time   time.Time
}

// Part is one leaf MIME part with its transfer encoding undone.
type Part struct {
	ContentType string // media type, e.g. "text/plain"
	Params      map[string]string
	Body        string
}

// Text returns the body of the first text/plain part, or "".
func (m Message) Text() string { return m.part("text/plain") }

// HTML returns the body of the first text/html part, or "".
func (m Message) HTML() string { return m.part("text/html") }

func (m Message) part(mediaType string) string {
	for _, p := range m.Parts {
		if p.ContentType == mediaType {
			return p.Body
		}
	}
	return ""
}

// Option configures a Server.
type Option func(*Server)

// WithAuth makes the server offer AUTH PLAIN and require a login with
// username and password before MAIL; other credentials get 535.
func WithAuth(username, password string) Option {
	return func(s *Server) { s.username, s.password = username, password }
}

// Server is a running SMTP server.
type Server struct {
	username, password string

	host string
	port int
	srv  *smtp.Server
	l    net.Listener

	mu        sync.Mutex
	messages  []Message
	rejected  map[string]bool // lower-cased recipient → answer 550
	failNext  int             // RCPTs still to answer 451
	refusals  int
	stopped   bool
	serveDone chan struct{}
	t         testing.TB
}

// Start starts a server on a free 127.0.0.1 port; it stops when the test
// ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{rejected: map[string]bool{}, serveDone: make(chan struct{}), t: t}
	for _, o := range opts {
		o(s)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen on loopback: %v", err)
	}
	addr := l.Addr().(*net.TCPAddr)
	s.host, s.port, s.l = addr.IP.String(), addr.Port, l

	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "mailtest.localhost"
	s.srv.AllowInsecureAuth = true // loopback only
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	s.srv.MaxMessageBytes = 10 << 20
	s.srv.ErrorLog = testLogger{s}

	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(l)
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *Server) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	_ = s.srv.Close()
	// Close only closes the listeners Serve has registered; one that has
	// not got that far yet would block in Accept for ever.
	_ = s.l.Close()
	<-s.serveDone
}

// Addr returns the host and port the server listens on.
func (s *Server) Addr() (host string, port int) { return s.host, s.port }

// Messages returns a copy of every message accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Reject makes the server refuse recipient addr for good: RCPT TO is
// answered "550 5.1.1 mailbox unavailable".
func (s *Server) Reject(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected[strings.ToLower(addr)] = true
}

// FailNext makes the server answer the next n RCPT TO commands, whatever the
// recipient, with "451 4.3.0 try again later", as a busy or greylisting
// server does; afterwards it accepts again.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// Refusals returns how many RCPT TO commands the server refused (550 or
// 451) so far.
func (s *Server) Refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusals
}

var (
	errMailboxUnavailable = &smtp.SMTPError{
		Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable",
	}
	errTryLater = &smtp.SMTPError{
		Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later",
	}
)

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

// session is one SMTP connection; it implements smtp.AuthSession.
type session struct {
	s      *Server
	authed string
	from   string
	to     []string
}

func (se *session) AuthMechanisms() []string {
	if se.s.username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if se.s.username == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != se.s.username || password != se.s.password {
			return smtp.ErrAuthFailed
		}
		se.authed = username
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.s.username != "" && se.authed == "" {
		return smtp.ErrAuthRequired
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := se.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.failNext > 0:
		s.failNext--
		s.refusals++
		return errTryLater
	case s.rejected[strings.ToLower(to)]:
		s.refusals++
		return errMailboxUnavailable
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msg, err := parse(raw)
	if err != nil {
		// Loud on purpose: a client under test wrote a malformed message.
		return &smtp.SMTPError{
			Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: "mailtest cannot parse the message: " + err.Error(),
		}
	}
	msg.From, msg.To, msg.Auth, msg.Time = se.from, append([]string(nil), se.to...), se.authed, time.Now()
	se.s.mu.Lock()
	se.s.messages = append(se.s.messages, msg)
	se.s.mu.Unlock()
	return nil
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }

// parse reads raw with net/mail and decodes its MIME parts.
func parse(raw []byte) (Message, error) {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, fmt.Errorf("read message: %w", err)
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		return Message{}, fmt.Errorf("read body: %w", err)
	}
	msg := Message{Raw: raw, Header: m.Header, Body: body}
	msg.Parts, err = leafParts(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), body)
	if err != nil {
		return Message{}, err
	}
	return msg, nil
}

func leafParts(contentType, encoding string, body []byte) ([]Part, error) {
	if contentType == "" {
		contentType = "text/plain; charset=us-ascii"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("content-type %q: %w", contentType, err)
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		decoded, err := decode(encoding, body)
		if err != nil {
			return nil, fmt.Errorf("%s part: %w", mediaType, err)
		}
		return []Part{{ContentType: mediaType, Params: params, Body: string(decoded)}}, nil
	}
	if params["boundary"] == "" {
		return nil, fmt.Errorf("%s without boundary", mediaType)
	}
	var parts []Part
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return parts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mediaType, err)
		}
		pb, err := io.ReadAll(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mediaType, err)
		}
		sub, err := leafParts(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), pb)
		if err != nil {
			return nil, err
		}
		parts = append(parts, sub...)
	}
}

func decode(encoding string, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	case "base64":
		// The decoder skips the CR LF that wrap base64 lines.
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(body)))
	default:
		return nil, fmt.Errorf("unknown transfer encoding %q", encoding)
	}
}

// testLogger sends the server's error log to the test log while the test
// runs; connection errors after the test are of no interest.
type testLogger struct{ s *Server }

func (l testLogger) Printf(format string, v ...any) { l.log(fmt.Sprintf(format, v...)) }
func (l testLogger) Println(v ...any)               { l.log(fmt.Sprintln(v...)) }

func (l testLogger) log(line string) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if !l.s.stopped {
		l.s.t.Logf("mailtest: %s", strings.TrimSpace(line))
	}
}
