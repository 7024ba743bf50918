package subjects

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
)

// Mail is one message to deliver, published on MailSend with Nats-Msg-Id set
// to ID so a retried publish does not send twice.
type Mail struct {
	ID      string `json:"id"`      // unique per mail, e.g. "magic-link:<token-id>"
	To      string `json:"to"`      // one RFC 5322 address
	Subject string `json:"subject"` // one line
	Text    string `json:"text"`    // plain-text body
	HTML    string `json:"html,omitempty"`
	// Unsubscribe, when set, is the recipient's one-click unsubscribe URL
	// (RFC 8058): senders add List-Unsubscribe: <Unsubscribe> and
	// List-Unsubscribe-Post: List-Unsubscribe=One-Click, so mail programs
	// offer an unsubscribe button that POSTs to it.
	Unsubscribe string `json:"unsubscribe,omitempty"`
}

// Validate reports every problem with m, naming the field.
func (m Mail) Validate() error {
	var errs []error
	if strings.TrimSpace(m.ID) == "" {
		errs = append(errs, errors.New("id: required"))
	}
	if _, err := mail.ParseAddress(m.To); err != nil {
		errs = append(errs, fmt.Errorf("to: %q is not an email address", m.To))
	}
	if strings.TrimSpace(m.Subject) == "" {
		errs = append(errs, errors.New("subject: required"))
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		errs = append(errs, errors.New("subject: must be one line"))
	}
	if strings.TrimSpace(m.Text) == "" {
		errs = append(errs, errors.New("text: required"))
	}
	if m.Unsubscribe != "" {
		// RFC 8058 wants an https URI; plain http is for development
		// installs. No spaces or angle brackets: it goes inside <…>.
		u, err := url.Parse(m.Unsubscribe)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(m.Unsubscribe, "\r\n <>") {
			errs = append(errs, fmt.Errorf("unsubscribe: %q is not an http(s) URL", m.Unsubscribe))
		}
	}
	return errors.Join(errs...)
}
