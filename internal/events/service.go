package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	"jetfleet/subjects"
)

// Mailer queues a mail (mail.Enqueue in production).
type Mailer func(ctx context.Context, m subjects.Mail) error

// Config tunes a Service.
type Config struct {
	// BaseURL of the site, for links in confirmation mail.
	BaseURL string
	// Mail queues confirmation mail; nil sends none.
	Mail Mailer
	// Now is the clock; default time.Now.
	Now func() time.Time
	Log *slog.Logger
	// HoldTTL is how long a paid ticket's seat stays held for its checkout;
	// default DefaultHoldTTL.
	HoldTTL time.Duration
	// UnconfirmedTTL is how long a registration waits for its participant
	// to confirm before it is deleted; default DefaultUnconfirmedTTL.
	UnconfirmedTTL time.Duration
	// Blobs stores team submissions' files; nil refuses files (a
	// submission is then title, description and link).
	Blobs blob.Store
	// MaxSubmissionFile bounds a submission's file; default
	// DefaultMaxSubmissionFile.
	MaxSubmissionFile int64
	// PostDelay is how long after a live event's end its post-event steps
	// run; default subjects.DefaultEventsPostDelay (tests and demos shorten
	// it: EVENTS_POST_DELAY).
	PostDelay time.Duration
}

// DefaultHoldTTL is how long a seat is held for a payment: a little over
// Stripe's shortest Checkout Session lifetime (30 minutes), so the session
// can expire together with the hold.
const DefaultHoldTTL = 35 * time.Minute

// DefaultUnconfirmedTTL is how long an unconfirmed registration is kept:
// the magic link lasts 15 minutes, but a participant can sign in later and
// confirm from "my events".
const DefaultUnconfirmedTTL = 24 * time.Hour

// Service reads and changes the Events product's state.
type Service struct {
	js      jetstream.JetStream
	catalog jetstream.KeyValue
	regs    jetstream.KeyValue
	teams   jetstream.KeyValue // breakout teams and submissions
	help    jetstream.KeyValue // help flags
	splits  *publishedSplits   // published teams, briefly kept in memory
	cfg     Config
}

// Open binds to the buckets and stream declared in subjects (see
// subjects.Provision).
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Service, error) {
	catalog, err := js.KeyValue(ctx, subjects.EventsCatalogBucket)
	if err != nil {
		return nil, fmt.Errorf("open events catalog bucket: %w", err)
	}
	regs, err := js.KeyValue(ctx, subjects.EventsRegistrationsBucket)
	if err != nil {
		return nil, fmt.Errorf("open events registrations bucket: %w", err)
	}
	teams, err := js.KeyValue(ctx, subjects.EventsTeamsBucket)
	if err != nil {
		return nil, fmt.Errorf("open events teams bucket: %w", err)
	}
	help, err := js.KeyValue(ctx, subjects.EventsHelpBucket)
	if err != nil {
		return nil, fmt.Errorf("open events help bucket: %w", err)
	}
	if cfg.MaxSubmissionFile <= 0 {
		cfg.MaxSubmissionFile = DefaultMaxSubmissionFile
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Mail == nil {
		cfg.Mail = func(context.Context, subjects.Mail) error { return nil }
	}
	if cfg.HoldTTL <= 0 {
		cfg.HoldTTL = DefaultHoldTTL
	}
	if cfg.UnconfirmedTTL <= 0 {
		cfg.UnconfirmedTTL = DefaultUnconfirmedTTL
	}
	if cfg.PostDelay <= 0 {
		cfg.PostDelay = subjects.DefaultEventsPostDelay
	}
	return &Service{js: js, catalog: catalog, regs: regs, teams: teams, help: help, splits: &publishedSplits{}, cfg: cfg}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Second) }
