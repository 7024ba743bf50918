package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/events"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestPublishSchedulesPostEventStepsAndAnEndChangeMovesThem(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	e := liveEvent(t, s, "org1", 10, free(10))
	f, err := s.PostSchedule(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.End.Add(subjects.DefaultEventsPostDelay); !f.At.Equal(want) || !f.End.Equal(e.End) {
		t.Fatalf("schedule at %v for end %v, want %v for %v", f.At, f.End, want, e.End)
	}
	in := events.InputOf(e)
	in.End = "2026-12-05T23:30"
	moved, err := s.UpdateEvent(ctx, "org1", e.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	f, err = s.PostSchedule(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := moved.End.Add(subjects.DefaultEventsPostDelay); !f.At.Equal(want) || !moved.End.After(e.End) {
		t.Fatalf("after moving the end to %v: schedule at %v, want %v", moved.End, f.At, want)
	}
}

func TestPostEventScheduleFiresOnceAtEndPlusDelay(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	// The service's clock is three hours behind: the event it sees ending
	// in an hour ended two hours ago, and a delay of 2h + 2s fires in 2 s.
	real := time.Now().UTC()
	fake := real.Add(-3 * time.Hour)
	s, err := events.Open(ctx, js, events.Config{BaseURL: "http://site", Now: func() time.Time { return fake }, PostDelay: 2*time.Hour + 2*time.Second})
	if err != nil {
		t.Fatal(err)
	}
	in := validInput()
	in.TimeZone = "UTC"
	in.Start = fake.Add(30 * time.Minute).Format(events.FormTime)
	in.End = fake.Add(60 * time.Minute).Format(events.FormTime)
	e, err := s.CreateEvent(ctx, "org1", in)
	if err != nil {
		t.Fatal(err)
	}
	if e, err = s.AddTicketType(ctx, "org1", e.ID, free(5)); err != nil {
		t.Fatal(err)
	}
	if e, err = s.Publish(ctx, "org1", e.ID); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, subjects.EventsPostStream)
	if err != nil {
		t.Fatal(err)
	}
	var got subjects.EventsPostFiring
	testenv.EventuallyState(t, 15*time.Second, "the post-event schedule fires", func() (bool, any) {
		m, err := st.GetLastMsgForSubject(ctx, subjects.EventsPostFire(e.ID))
		if err != nil {
			return false, err
		}
		return json.Unmarshal(m.Data, &got) == nil, string(m.Data)
	})
	if got.EventID != e.ID || !got.End.Equal(e.End) {
		t.Fatalf("fired %+v for event %s ending %v", got, e.ID, e.End)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subjects.EventsPostFire(e.ID)))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subjects.EventsPostFire(e.ID)]; n != 1 {
		t.Fatalf("%d firings, want 1", n)
	}
}
