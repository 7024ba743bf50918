// Package accounts keeps the site's users and their single-use magic sign-in
// links, in JetStream KV. Every product signs people in through it: tracker
// users, event organisers and participants alike have no password.
package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/ids"
	"jetfleet/subjects"
)

// Errors callers tell apart.
var (
	ErrNotFound    = errors.New("user not found")
	ErrInvalidLink = errors.New("this sign-in link is invalid, expired or already used")
	ErrBadEmail    = errors.New("not an email address")
)

// User is one person with an account.
type User struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	Premium bool   `json:"premium"`
	// Subscription is the Stripe subscription (sub_…) that pays for
	// Premium; empty when premium was granted by an operator or ended.
	Subscription string `json:"subscription,omitempty"`
	// Operator accounts run the deployment: their pages show every
	// customer's figures (jetfleet users operator EMAIL).
	Operator bool      `json:"operator,omitempty"`
	Created  time.Time `json:"created"`
}

// Link is what a redeemed magic link carries.
type Link struct {
	Email   string    `json:"email"`
	Next    string    `json:"next"` // local path to land on after signing in
	Created time.Time `json:"created"`
}

// Store reads and writes users and links.
type Store struct {
	users   jetstream.KeyValue
	links   jetstream.KeyValue
	linkTTL time.Duration
	now     func() time.Time
}

// Config tunes a Store.
type Config struct {
	LinkTTL time.Duration    // how long a magic link stays valid; default 15 minutes
	Now     func() time.Time // clock; default time.Now
}

// Open binds to the USERS and MAGICLINKS buckets (see subjects.Provision).
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	users, err := js.KeyValue(ctx, subjects.AccountsUsersBucket)
	if err != nil {
		return nil, fmt.Errorf("open users bucket: %w", err)
	}
	links, err := js.KeyValue(ctx, subjects.AccountsMagicLinksBucket)
	if err != nil {
		return nil, fmt.Errorf("open magic links bucket: %w", err)
	}
	if cfg.LinkTTL <= 0 {
		cfg.LinkTTL = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{users: users, links: links, linkTTL: cfg.LinkTTL, now: cfg.Now}, nil
}

// NormaliseEmail validates an address typed by a person and returns it in the
// one form we store (the bare address, lower case).
func NormaliseEmail(s string) (string, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(s))
	if err != nil || !strings.Contains(a.Address, ".") {
		return "", ErrBadEmail // the address itself stays out of errors and so out of logs
	}
	return strings.ToLower(a.Address), nil
}

func emailKey(email string) string {
	sum := sha256.Sum256([]byte(email))
	return "email." + hex.EncodeToString(sum[:])
}

// emailRef names an address in errors and logs without writing it: the
// first characters of its index key's hash, enough to find the key.
func emailRef(email string) string { return emailKey(email)[len("email.") : len("email.")+12] }

func userKey(id string) string { return "id." + id }

// User returns the user with id.
func (s *Store) User(ctx context.Context, id string) (User, error) {
	e, err := s.users.Get(ctx, userKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return User{}, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("load user %s: %w", id, err)
	}
	var u User
	if err := json.Unmarshal(e.Value(), &u); err != nil {
		return User{}, fmt.Errorf("decode user %s: %w", id, err)
	}
	return u, nil
}

// UserByEmail returns the user with that (normalised) address.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	e, err := s.users.Get(ctx, emailKey(email))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return User{}, fmt.Errorf("user with address %s: %w", emailRef(email), ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("look up address %s: %w", emailRef(email), err)
	}
	return s.User(ctx, string(e.Value()))
}

// EnsureUser returns the user with that address, creating it the first time.
// Two concurrent first sign-ins of one address create one user: the email
// index key is claimed with Create, which only one writer wins.
func (s *Store) EnsureUser(ctx context.Context, email string) (User, error) {
	email, err := NormaliseEmail(email)
	if err != nil {
		return User{}, err
	}
	if u, err := s.UserByEmail(ctx, email); err == nil || !errors.Is(err, ErrNotFound) {
		return u, err
	}
	u := User{ID: ids.New(), Email: email, Created: s.now().UTC()}
	b, _ := json.Marshal(u)
	if _, err := s.users.Create(ctx, userKey(u.ID), b); err != nil {
		return User{}, fmt.Errorf("create user %s: %w", u.ID, err)
	}
	if _, err := s.users.Create(ctx, emailKey(email), []byte(u.ID)); err != nil {
		_ = s.users.Purge(ctx, userKey(u.ID))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return s.UserByEmail(ctx, email) // the other sign-in won
		}
		return User{}, fmt.Errorf("index user %s: %w", u.ID, err)
	}
	return u, nil
}

// SetPremium lifts (or restores) the free plan's limits for a user.
func (s *Store) SetPremium(ctx context.Context, email string, premium bool) (User, error) {
	return s.change(ctx, email, func(u *User) { u.Premium = premium })
}

// SetSubscription records the Stripe subscription that pays for premium
// (sub non-empty: premium on) or its end (sub empty: premium off).
func (s *Store) SetSubscription(ctx context.Context, email, sub string) (User, error) {
	return s.change(ctx, email, func(u *User) { u.Subscription, u.Premium = sub, sub != "" })
}

// SetOperator makes a user an operator (or takes the role away).
func (s *Store) SetOperator(ctx context.Context, email string, operator bool) (User, error) {
	return s.change(ctx, email, func(u *User) { u.Operator = operator })
}

// change applies f to the user of email with compare-and-set.
func (s *Store) change(ctx context.Context, email string, f func(*User)) (User, error) {
	email, err := NormaliseEmail(email)
	if err != nil {
		return User{}, err
	}
	for {
		u, err := s.UserByEmail(ctx, email)
		if err != nil {
			return User{}, err
		}
		e, err := s.users.Get(ctx, userKey(u.ID))
		if err != nil {
			return User{}, fmt.Errorf("load user %s: %w", u.ID, err)
		}
		// The record of the revision we write over, not the one read
		// before it: another change may have landed in between.
		if err := json.Unmarshal(e.Value(), &u); err != nil {
			return User{}, fmt.Errorf("decode user %s: %w", u.ID, err)
		}
		f(&u)
		b, _ := json.Marshal(u)
		_, err = s.users.Update(ctx, userKey(u.ID), b, e.Revision())
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return User{}, fmt.Errorf("update user %s: %w", u.ID, err)
		}
		// Someone else changed the user meanwhile: read again and retry.
	}
}

// IssueLink creates a single-use sign-in link for email and returns its
// token, which goes only into the mail: the bucket keeps its hash.
func (s *Store) IssueLink(ctx context.Context, email, next string) (string, error) {
	email, err := NormaliseEmail(email)
	if err != nil {
		return "", err
	}
	token := ids.Token(32)
	b, _ := json.Marshal(Link{Email: email, Next: next, Created: s.now().UTC()})
	if _, err := s.links.Create(ctx, linkKey(token), b, jetstream.KeyTTL(s.linkTTL)); err != nil {
		return "", fmt.Errorf("store sign-in link: %w", err)
	}
	return token, nil
}

// PeekLink returns what a link signs in to without consuming it, so the
// confirmation page can name the account; ErrInvalidLink when it would not
// work.
func (s *Store) PeekLink(ctx context.Context, token string) (Link, error) {
	if len(token) != 43 {
		return Link{}, ErrInvalidLink
	}
	e, err := s.links.Get(ctx, linkKey(token))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Link{}, ErrInvalidLink
	}
	if err != nil {
		return Link{}, fmt.Errorf("load sign-in link: %w", err)
	}
	var l Link
	if err := json.Unmarshal(e.Value(), &l); err != nil || s.now().Sub(l.Created) > s.linkTTL {
		return Link{}, ErrInvalidLink
	}
	return l, nil
}

// RedeemLink consumes a link: it works once, within its lifetime. Two
// concurrent redemptions of one token cannot both succeed, because the
// delete is conditional on the revision that was read.
func (s *Store) RedeemLink(ctx context.Context, token string) (Link, error) {
	if len(token) != 43 {
		return Link{}, ErrInvalidLink
	}
	key := linkKey(token)
	e, err := s.links.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Link{}, ErrInvalidLink
	}
	if err != nil {
		return Link{}, fmt.Errorf("load sign-in link: %w", err)
	}
	var l Link
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return Link{}, ErrInvalidLink
	}
	if err := s.links.Purge(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Link{}, ErrInvalidLink // redeemed concurrently
		}
		return Link{}, fmt.Errorf("consume sign-in link: %w", err)
	}
	// The server's TTL removes the key, but not to the second.
	if s.now().Sub(l.Created) > s.linkTTL {
		return Link{}, ErrInvalidLink
	}
	return l, nil
}

// LinkKey is the bucket key of a token: its SHA-256, so a leaked bucket does
// not leak working links.
func linkKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// LinkID is a stable, non-secret identifier of a link for mail ids and logs.
func LinkID(token string) string { return linkKey(token)[:16] }

// Delete removes user id and its email index for good (a GDPR deletion):
// both keys are purged, so no earlier revision keeps the address. Deleting
// a user that is already gone is not an error, so a repeated request is
// harmless. The index is purged only while it still points at id: an
// address signed up again since belongs to the new user.
func (s *Store) Delete(ctx context.Context, id string) error {
	u, err := s.User(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	e, err := s.users.Get(ctx, emailKey(u.Email))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("look up index of user %s: %w", id, err)
	case string(e.Value()) == id:
		if err := s.users.Purge(ctx, emailKey(u.Email), jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("delete index of user %s: %w", id, err)
		}
	}
	if err := s.users.Purge(ctx, userKey(id)); err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	return nil
}
