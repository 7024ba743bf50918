package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// schedulePost sets (or moves) event e's post-event schedule: a one-shot
// message schedule (@at e.End + PostDelay) on subjects.EventsPostStream
// that fires subjects.EventsPostFire for the post-event steps
// (accumulation, fee, summary mail, exports). The stream keeps one message
// per subject, so a new schedule replaces the previous one: moving the end
// moves the firing. version tells this schedule from the previous one for
// the duplicate window (with the end, the event's Updated instant): setting
// the same schedule again is deduplicated, moving the end back to an
// earlier value is not.
func (s *Service) schedulePost(ctx context.Context, e Event, version time.Time) error {
	at := e.End.Add(s.cfg.PostDelay)
	if now := s.cfg.Now(); !at.After(now) {
		// An end moved into the past: fire as soon as possible.
		at = now.Add(time.Second)
	}
	at = at.UTC().Truncate(time.Second)
	b, _ := json.Marshal(subjects.EventsPostFiring{EventID: e.ID, End: e.End, At: at})
	err := s.publishRetrying(ctx, subjects.EventsPostSchedule(e.ID), b,
		jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(subjects.EventsPostFire(e.ID)),
		jetstream.WithMsgID("postschedule:"+e.ID+":"+e.End.UTC().Format(time.RFC3339)+":"+version.UTC().Format(time.RFC3339Nano)))
	if err != nil {
		return fmt.Errorf("schedule post-event steps of %s: %w", e.ID, err)
	}
	return nil
}

// PostSchedule returns when event eid's post-event steps are scheduled to
// run and for which end, or ErrNotFound when none is set (a draft).
func (s *Service) PostSchedule(ctx context.Context, eid string) (subjects.EventsPostFiring, error) {
	st, err := s.js.Stream(ctx, subjects.EventsPostStream)
	if err != nil {
		return subjects.EventsPostFiring{}, fmt.Errorf("open %s: %w", subjects.EventsPostStream, err)
	}
	m, err := st.GetLastMsgForSubject(ctx, subjects.EventsPostSchedule(eid))
	if err != nil {
		return subjects.EventsPostFiring{}, ErrNotFound
	}
	var f subjects.EventsPostFiring
	if err := json.Unmarshal(m.Data, &f); err != nil {
		return f, fmt.Errorf("decode post-event schedule of %s: %w", eid, err)
	}
	return f, nil
}
