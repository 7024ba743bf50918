// Package session gives the edge its browser sessions and CSRF protection.
//
// Every browser gets a random session id in an HttpOnly, SameSite=Lax cookie.
// Only signed-in sessions are stored: in the SESSIONS KV bucket under the
// SHA-256 of the id (never the id itself), each key with its own TTL, so any edge can serve any request and sessions expire without
// a sweeper. Signing in rotates the id (no session fixation).
//
// Every unsafe request (POST, PUT, DELETE…) must be same-origin (checked with
// net/http's CrossOriginProtection) and carry the session's CSRF token, an
// HMAC of the session id, in the form field csrf_token or the X-CSRF-Token
// header.
package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

const (
	// CookieName is the session cookie.
	CookieName = "jf_session"
	// FormField is the hidden form field carrying the CSRF token.
	FormField = "csrf_token"
	// HeaderName carries the CSRF token for scripts.
	HeaderName = "X-CSRF-Token"
)

// validID is the shape of ids this package issues; anything else in a cookie
// is ignored rather than used as a KV key.
var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// Session is the state of one browser.
type Session struct {
	ID     string
	UserID string // empty when not signed in
	Email  string // the signed-in user's address, for display
	csrf   string
}

// CSRFToken is the token forms of this session must send back.
func (s *Session) CSRFToken() string { return s.csrf }

// SignedIn reports whether a user is signed in.
func (s *Session) SignedIn() bool { return s.UserID != "" }

// Config tunes the manager.
type Config struct {
	Secret []byte        // at least 32 bytes; signs CSRF tokens
	TTL    time.Duration // lifetime of a signed-in session; default 30 days
	Secure bool          // set the cookie's Secure flag (sites served over https)
}

// Manager loads, creates and ends sessions.
type Manager struct {
	kv  jetstream.KeyValue
	cfg Config
	log *slog.Logger
}

// New returns a manager storing signed-in sessions in kv.
func New(kv jetstream.KeyValue, cfg Config, log *slog.Logger) (*Manager, error) {
	if len(cfg.Secret) < 32 {
		return nil, errors.New("session: SESSION_SECRET must be at least 32 bytes")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 30 * 24 * time.Hour
	}
	return &Manager{kv: kv, cfg: cfg, log: log}, nil
}

type ctxKey struct{}

// From returns the request's session; Middleware must have run.
func From(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	if s == nil {
		return &Session{}
	}
	return s
}

// Middleware attaches the browser's session to the request, issuing a new
// session id when the browser has none, and rejects unsafe requests that are
// cross-origin or lack the session's CSRF token.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "This request came from another site and was refused. Reload the page and try again.", http.StatusForbidden)
	}))
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := m.load(r)
		if err != nil {
			m.log.Error("load session", "err", err)
			http.Error(w, "Sessions are unavailable right now; try again in a moment.", http.StatusServiceUnavailable)
			return
		}
		if s == nil {
			s = m.fresh()
			m.setCookie(w, s.ID, 0)
		}
		if !safeMethod(r.Method) && !m.validToken(r, s) {
			http.Error(w, "This form has expired. Go back, reload the page and submit it again.", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	}))
}

// SignIn starts a signed-in session for userID under a new id, replacing the
// browser's current one, and returns it.
func (m *Manager) SignIn(ctx context.Context, w http.ResponseWriter, r *http.Request, userID, email string) (*Session, error) {
	if old := From(r.Context()); old.ID != "" {
		_ = m.kv.Purge(ctx, StoreKey(old.ID)) // best effort; an anonymous id has no key
	}
	s := m.fresh()
	s.UserID, s.Email = userID, email
	rec, err := json.Marshal(subjects.SessionRecord{UserID: userID, Email: email, Created: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	if _, err := m.kv.Create(ctx, StoreKey(s.ID), rec, jetstream.KeyTTL(m.cfg.TTL)); err != nil {
		return nil, fmt.Errorf("store session: %w", err)
	}
	m.setCookie(w, s.ID, m.cfg.TTL)
	return s, nil
}

// SignOut ends the browser's session.
func (m *Manager) SignOut(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	s := From(r.Context())
	if s.SignedIn() {
		if err := m.kv.Purge(ctx, StoreKey(s.ID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("end session: %w", err)
		}
	}
	m.setCookie(w, "", -1)
	return nil
}

// RequestUser returns the user of r's session cookie when it is signed
// in, reading nothing of its body: routes that take large uploads ask it
// before the upload is read (Middleware's CSRF check reads it). It does
// not check that the account still exists; Gate does, later.
func (m *Manager) RequestUser(r *http.Request) (User, bool, error) {
	s, err := m.load(r)
	if err != nil || s == nil || !s.SignedIn() {
		return User{}, false, err
	}
	return User{ID: s.UserID, Email: s.Email}, true, nil
}

func (m *Manager) load(r *http.Request) (*Session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || !validID.MatchString(c.Value) {
		return nil, nil
	}
	s := &Session{ID: c.Value, csrf: m.token(c.Value)}
	e, err := m.kv.Get(r.Context(), StoreKey(c.Value))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return s, nil // anonymous, or expired: the id still serves for CSRF
	case err != nil:
		return nil, fmt.Errorf("get session: %w", err)
	}
	var rec subjects.SessionRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return s, nil // unreadable record: treat as signed out
	}
	s.UserID, s.Email = rec.UserID, rec.Email
	return s, nil
}

// StoreKey is the SESSIONS bucket key of a session id: its SHA-256, so
// whoever can read the bucket (an operator, a backup) sees no cookie value
// that would sign them in.
func StoreKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (m *Manager) fresh() *Session {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	id := base64.RawURLEncoding.EncodeToString(b)
	return &Session{ID: id, csrf: m.token(id)}
}

func (m *Manager) token(id string) string {
	mac := hmac.New(sha256.New, m.cfg.Secret)
	mac.Write([]byte("csrf:" + id))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (m *Manager) validToken(r *http.Request, s *Session) bool {
	got := r.Header.Get(HeaderName)
	if got == "" {
		got = r.PostFormValue(FormField)
	}
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrf))
}

func (m *Manager) setCookie(w http.ResponseWriter, id string, ttl time.Duration) {
	c := &http.Cookie{
		Name:     CookieName,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		Secure:   m.cfg.Secure,
		SameSite: http.SameSiteLaxMode,
	}
	switch {
	case ttl > 0:
		c.MaxAge = int(ttl.Seconds())
	case ttl < 0:
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}
