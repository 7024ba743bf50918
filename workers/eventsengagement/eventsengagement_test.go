package eventsengagement_test

import (
	"strings"
	"testing"
	"time"

	"jetfleet/subjects"
	"jetfleet/workers/eventsengagement"
)

func TestValidateNamesWhatIsWrongWithAnEngagement(t *testing.T) {
	at := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	ok := subjects.EventsEngagement{Kind: subjects.EngagementHeartbeat, EventID: "abcdefghijklmnop", ID: "u1.1", UserID: "u1", At: at}
	cases := []struct {
		name    string
		subject string
		change  func(e *subjects.EventsEngagement)
		want    string // "" for valid
	}{
		{"valid", "", func(*subjects.EventsEngagement) {}, ""},
		{"unknown kind", "eventsengagement.abcdefghijklmnop.like", func(e *subjects.EventsEngagement) { e.Kind = "like" }, `kind "like"`},
		{"bad event id", "eventsengagement.x.heartbeat", func(e *subjects.EventsEngagement) { e.EventID = "x" }, "event_id"},
		{"subject of another event", "eventsengagement.bbbbbbbbbbbbbbbb.heartbeat", func(*subjects.EventsEngagement) {}, "published on"},
		{"no id", "", func(e *subjects.EventsEngagement) { e.ID = " " }, "id: required"},
		{"heartbeat without user", "", func(e *subjects.EventsEngagement) { e.UserID = "" }, "user_id"},
		{"help flag without ref", "eventsengagement.abcdefghijklmnop.helpraised", func(e *subjects.EventsEngagement) { e.Kind = subjects.EngagementHelpRaised }, "ref"},
		{"no time", "", func(e *subjects.EventsEngagement) { e.At = time.Time{} }, "at "},
	}
	for _, c := range cases {
		e := ok
		c.change(&e)
		subject := c.subject
		if subject == "" {
			subject = subjects.EventsEngagementSubject(e.EventID, e.Kind)
		}
		err := eventsengagement.Validate(subject, e)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
}
