// Package eventspost holds the post-event worker roles. They run when an
// event's post-event schedule fires (subjects.EventsPostStream):
//
//   - events-post accumulates the event's figures once (eventpost.Compute)
//     into ClickHouse (events_summary) and the KV summary record, then
//     publishes subjects.EventsPostAccumulated;
//   - events-post also queues the event's CRM exports for the
//     events-export role (crm.RequestPostEvent);
//   - events-fee, on that, charges the platform fee off-session exactly
//     once (the ledger record in KV, Stripe idempotency keys derived from
//     the event) and mails the organiser the summary once.
//
// Each step is idempotent per event, so a second firing, a redelivery or a
// replay from the DLQ changes nothing.
package eventspost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/eventpost"
	"jetfleet/internal/events"
	"jetfleet/internal/ids"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Post is the events-post role's handler.
type Post struct {
	JS         jetstream.JetStream
	Events     *events.Service
	Store      *eventpost.Store
	ClickHouse driver.Conn
	// Exports queues the event's post-event CRM exports
	// (crm.RequestPostEvent: one job, a run id fixed per event, so a
	// second firing exports nothing twice); nil queues none.
	Exports func(ctx context.Context, eventID string) error
	Now     func() time.Time
	Log     *slog.Logger
}

// Firing decodes a schedule's firing and checks its event id.
func Firing(msg jetstream.Msg) (subjects.EventsPostFiring, error) {
	var f subjects.EventsPostFiring
	if err := json.Unmarshal(msg.Data(), &f); err != nil {
		return f, consume.Permanentf("decode post-event firing: %v", err)
	}
	if !ids.Valid(f.EventID) {
		return f, consume.Permanentf("post-event firing of %q: not an event id", f.EventID)
	}
	return f, nil
}

// Handle accumulates the figures of the event a firing names.
func (p *Post) Handle(ctx context.Context, msg jetstream.Msg) error {
	f, err := Firing(msg)
	if err != nil {
		return err
	}
	e, err := p.Events.EventByID(ctx, f.EventID)
	if errors.Is(err, events.ErrNotFound) {
		return consume.Permanentf("post-event firing of unknown event %s", f.EventID)
	}
	if err != nil {
		return err
	}
	if !f.End.IsZero() && !f.End.Equal(e.End) {
		// The end moved after this firing was scheduled: the schedule set
		// for the new end does the work.
		p.Log.Info("post-event firing for an earlier end: skipped", "event", e.ID, "fired_for", f.End, "end", e.End)
		return nil
	}
	if e.Status != events.Live || !e.Past(p.Now()) {
		p.Log.Info("post-event firing before the event is over: skipped", "event", e.ID, "status", e.Status, "end", e.End)
		return nil
	}
	if p.Exports != nil {
		if err := p.Exports(ctx, e.ID); err != nil {
			return fmt.Errorf("queue post-event exports of %s: %w", e.ID, err)
		}
	}
	sum, err := p.Store.Summary(ctx, e.ID)
	if errors.Is(err, eventpost.ErrNotFound) {
		if sum, err = eventpost.Compute(ctx, p.Events, p.ClickHouse, e, p.Now()); err != nil {
			return fmt.Errorf("accumulate %s: %w", e.ID, err)
		}
		// ClickHouse first: rewriting its rows is harmless, while the KV
		// record, once there, is what every later step reads.
		if p.ClickHouse != nil {
			if err := analytics.WriteEventSummary(ctx, p.ClickHouse, e.ID, sum.Computed, sum.Rows()); err != nil {
				return err
			}
		}
		var created bool
		if sum, created, err = p.Store.SaveSummary(ctx, sum); err != nil {
			return err
		}
		if created {
			p.Log.Info("event figures accumulated", "event", e.ID, "registrations", sum.Registrations, "attendees", sum.Attendees, "messages", sum.Messages())
		}
	} else if err != nil {
		return err
	}
	// Published again on a second firing (deduplicated within the window;
	// the fee step is idempotent beyond it), in case the first publish was
	// lost with its worker.
	b, _ := json.Marshal(subjects.EventsPostFiring{EventID: e.ID, End: e.End, At: sum.Computed})
	if _, err := p.JS.Publish(ctx, subjects.EventsPostAccumulated(e.ID), b, jetstream.WithMsgID("accumulated:"+e.ID)); err != nil {
		return fmt.Errorf("publish accumulated %s: %w", e.ID, err)
	}
	return nil
}
