// Package eventsengagement is the events-engagement worker role: it
// consumes what the live event app's edges publish on
// subjects.EventsEngagementStream (connects, heartbeats, messages, help
// flags, submissions), validates it, and writes it to ClickHouse
// (analytics.EngagementTable) through the batch writer, acknowledging each
// message only once its row is stored. Invalid messages go to the DLQ with
// the reason. Redeliveries are harmless: every figure counts distinct
// occurrence ids.
package eventsengagement

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/ids"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Role is the role's name.
const Role = "events-engagement"

// kinds are the engagement kinds, with whether they name a participant.
var kinds = map[string]bool{
	subjects.EngagementConnected:    true,
	subjects.EngagementHeartbeat:    true,
	subjects.EngagementMessage:      true,
	subjects.EngagementHelpRaised:   false,
	subjects.EngagementHelpClaimed:  false,
	subjects.EngagementHelpResolved: false,
	subjects.EngagementSubmitted:    false,
}

// Validate reports what is wrong with an engagement that arrived on
// subject, or nil.
func Validate(subject string, e subjects.EventsEngagement) error {
	var problems []string
	needsUser, known := kinds[e.Kind]
	if !known {
		problems = append(problems, fmt.Sprintf("kind %q is not an engagement kind", e.Kind))
	}
	if !ids.Valid(e.EventID) {
		problems = append(problems, fmt.Sprintf("event_id %q is not an event id", e.EventID))
	} else if known && subject != subjects.EventsEngagementSubject(e.EventID, e.Kind) {
		problems = append(problems, fmt.Sprintf("published on %s, but the payload is a %s of event %s", subject, e.Kind, e.EventID))
	}
	if strings.TrimSpace(e.ID) == "" || len(e.ID) > 200 {
		problems = append(problems, "id: required, at most 200 characters")
	}
	if needsUser && strings.TrimSpace(e.UserID) == "" {
		problems = append(problems, "user_id: required for a "+e.Kind)
	}
	if strings.HasPrefix(e.Kind, "help") && e.Ref == "" {
		problems = append(problems, "ref: required for a help flag (the flag id)")
	}
	if e.At.IsZero() || e.At.Year() < 2020 || e.At.After(time.Now().Add(24*time.Hour)) {
		problems = append(problems, fmt.Sprintf("at %v: missing or implausible", e.At))
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid engagement: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Handler validates one message and writes its row through w, returning
// once the row is stored.
func Handler(w *analytics.DurableWriter) consume.Handler {
	return func(ctx context.Context, msg jetstream.Msg) error {
		var e subjects.EventsEngagement
		if err := json.Unmarshal(msg.Data(), &e); err != nil {
			return consume.Permanentf("decode engagement: %v", err)
		}
		if err := Validate(msg.Subject(), e); err != nil {
			return consume.Permanent(err)
		}
		if err := w.Write(ctx, analytics.EngagementRow(e)...); err != nil {
			return fmt.Errorf("store %s %s of %s: %w", e.Kind, e.ID, e.EventID, err)
		}
		return nil
	}
}

// Config tunes the role.
type Config struct {
	// FlushEvery is how often buffered rows are written; default 1s.
	FlushEvery time.Duration
}

// Roles is the events-engagement role.
func Roles(cfg Config) []consume.Role {
	return []consume.Role{{
		Name: Role,
		Run: func(ctx context.Context, d consume.Deps, m *consume.Metrics) error {
			return Run(ctx, d, m, cfg)
		},
	}}
}

// Run consumes until ctx ends. Its writer outlives the consumer, so the
// rows of messages in flight at shutdown are stored (and acknowledged).
func Run(ctx context.Context, d consume.Deps, m *consume.Metrics, cfg Config) error {
	ch, err := d.RequireClickHouse(Role)
	if err != nil {
		return err
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Second
	}
	log := d.Log.With("role", Role)
	w, err := analytics.NewDurableWriter(ch, analytics.EngagementTable, analytics.EngagementColumns, cfg.FlushEvery, log)
	if err != nil {
		return err
	}
	// Many small messages: large fetches, many in flight, so one flush
	// carries thousands of rows.
	return consume.WithLoop(ctx, w.Run, consume.New(d.JS, consume.Config{
		Role: Role, Stream: subjects.EventsEngagementStream, Consumer: subjects.EventsEngagementConsumer,
		Batch: 1000, Concurrency: 2000, BackoffMin: time.Second, BackoffMax: time.Minute,
	}, Handler(w), m, d.Log).Run)
}
