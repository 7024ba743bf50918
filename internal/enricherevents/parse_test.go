package enricherevents_test

import (
	"errors"
	"strings"
	"testing"

	"jetfleet/internal/enricherevents"
	"jetfleet/subjects"
)

func TestParseEventReportsEveryProblem(t *testing.T) {
	cases := []struct {
		name, kind, body string
		problems         []string // substrings, one per expected problem
	}{
		{"valid user", subjects.EnricherKindUser, `{"operation":"create","uuid":"u1","country":"DE","active":true,"extra":1}`, nil},
		{"valid subscription", subjects.EnricherKindSubscription, `{"operation":"update","user_uuid":"u1","language":"es","subscription_period":30}`, nil},
		{"valid lesson", subjects.EnricherKindLesson, `{"user_uuid":"u1","language":"es","completed_lessons_in_course":3}`, nil},
		{"nested, escaped and spaced values", subjects.EnricherKindLesson, " { \"user_uuid\" : \"u1\" ,\n \"lang\\u0075age\":\"es\", \"x\": {\"a\":[1,\"}\"]}, \"title\":\"a\\\"b\" } ", nil},
		{"not an object", subjects.EnricherKindUser, `[1,2]`, []string{"body: must be one JSON object"}},
		{"not json", subjects.EnricherKindLesson, `{"user_uuid":`, []string{"body: must be one JSON object"}},
		{"unknown kind", "course", `{}`, []string{`kind "course"`}},
		{"missing identifiers", subjects.EnricherKindSubscription, `{"operation":"create"}`, []string{"user_uuid: required", "language: required"}},
		{"unknown operation", subjects.EnricherKindUser, `{"operation":"delete","uuid":"u1"}`, []string{`operation: must be "create" or "update", got "delete"`}},
		{"wrong types", subjects.EnricherKindUser, `{"operation":"create","uuid":"u1","active":"yes","country":7}`,
			[]string{"active: must be a boolean, got a string", "country: must be a string, got the number 7"}},
		{"fractional integer", subjects.EnricherKindLesson, `{"user_uuid":"u1","language":"es","percentage_completed_in_course":1.5}`,
			[]string{"percentage_completed_in_course: must be an integer"}},
		{"repeated member: the last one counts", subjects.EnricherKindLesson, `{"user_uuid":"u1","language":"es","title":7,"title":"ok"}`, nil},
		{"wrong pass-through types, all named", subjects.EnricherKindLesson, `{"user_uuid":"u1","language":"es","title":7,"course_uuid":true,"number_of_lessons_in_course":"20"}`,
			[]string{"course_uuid: must be a string, got a boolean", "number_of_lessons_in_course: must be an integer, got a string", "title: must be a string, got the number 7"}},
		{"null identifier", subjects.EnricherKindLesson, `{"user_uuid":null,"language":"es"}`, []string{"user_uuid: must be a string, got null"}},
		{"identifier not a key", subjects.EnricherKindLesson, `{"user_uuid":"a.b","language":"es"}`, []string{"user_uuid:", "only letters"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := enricherevents.Parse(c.kind, []byte(c.body))
			if len(c.problems) == 0 {
				if err != nil {
					t.Fatalf("valid event rejected: %v", err)
				}
				if ev.Kind != c.kind || ev.UserUUID() != "u1" {
					t.Fatalf("parsed %+v", ev)
				}
				return
			}
			var verr *enricherevents.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			for _, want := range c.problems {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// ParseEvent fills every lesson field from the member validation checked,
// by its exact name: a look-alike spelling (USER_UUID, Course_UUID) is an
// extra property, never read in its place.
func TestParseEventReadsLessonFieldsByTheirValidatedNames(t *testing.T) {
	ev, err := enricherevents.Parse(subjects.EnricherKindLesson, []byte(`{"user_uuid":"u1","USER_UUID":"u2","language":"es","Language":"de",
		"course_uuid":"c1","Course_UUID":"c2","title":"T","number_of_lessons_in_course":20,"completed_lessons_in_course":4,"percentage_completed_in_course":20,"content_release_id":"r1","course_title":"C"}`))
	if err != nil {
		t.Fatal(err)
	}
	l := ev.Lesson
	if l.UserUUID != "u1" || l.Language != "es" || *l.CourseUUID != "c1" || *l.Title != "T" || *l.CourseTitle != "C" || *l.ContentReleaseID != "r1" ||
		*l.NumberOfLessonsInCourse != 20 || *l.CompletedLessonsInCourse != 4 || *l.PercentageCompletedInCourse != 20 {
		t.Errorf("lesson %+v", l)
	}
	out, err := enricherevents.ParseEnrichedLesson([]byte(`{"user_uuid":"u1","language":"es","COUNTRY":"XX","country":"DE","subscription_status":null,"subscription_type":"pro","enrichment":"missing_subscription"}`))
	if err != nil {
		t.Fatal(err)
	}
	if out.UserUUID != "u1" || *out.Country != "DE" || out.SubscriptionStatus != nil || *out.SubscriptionType != "pro" || out.Enrichment != "missing_subscription" {
		t.Errorf("enriched lesson %+v", out)
	}
	if _, err := enricherevents.ParseEnrichedLesson([]byte(`{"user_uuid":"u1","language":"es","country":7}`)); err == nil ||
		!strings.Contains(err.Error(), "country: must be a string or null") || !strings.Contains(err.Error(), "enrichment: required") {
		t.Errorf("bad enriched lesson: %v", err)
	}
}

// BenchmarkParseLesson is a lesson's full parse (the sink's) and the
// Enricher's keys-only one (go test -bench).
func BenchmarkParseLesson(b *testing.B) {
	body := []byte(`{"user_uuid":"user-0001234","language":"es","title":"Lesson 3","course_uuid":"c-12","course_title":"Course","number_of_lessons_in_course":20,"completed_lessons_in_course":4,"percentage_completed_in_course":20,"content_release_id":"r42"}`)
	var p enricherevents.Parser
	for name, parse := range map[string]func(string, []byte) (subjects.EnricherEvent, error){"full": enricherevents.Parse, "keys": p.ParseKeys} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parse(subjects.EnricherKindLesson, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// ParseKeys accepts and refuses exactly what Parse does; a lesson comes
// back with its keys only, users and subscriptions in full, and its reused
// scratch leaks nothing from one event into the next.
func TestParseKeysValidatesAsParseAndKeepsTheKeys(t *testing.T) {
	var p enricherevents.Parser
	for _, c := range []struct{ kind, body string }{
		{subjects.EnricherKindLesson, `{"user_uuid":"u1","language":"es","title":"T","number_of_lessons_in_course":20,"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11}`},
		{subjects.EnricherKindLesson, `{"user_uuid":"u2","language":"fr"}`},
		{subjects.EnricherKindLesson, `{"user_uuid":"u1","language":"es","title":7}`},
		{subjects.EnricherKindLesson, `{"language":"es"}`},
		{subjects.EnricherKindLesson, `[1]`},
		{subjects.EnricherKindUser, `{"operation":"create","uuid":"u3","country":"DE","active":true}`},
		{subjects.EnricherKindSubscription, `{"operation":"update","user_uuid":"u3","language":"de","subscription_period":30}`},
		{subjects.EnricherKindSubscription, `{"operation":"delete","user_uuid":"u3","language":"de"}`},
	} {
		want, wantErr := enricherevents.Parse(c.kind, []byte(c.body))
		got, err := p.ParseKeys(c.kind, []byte(c.body))
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Errorf("%s: ParseKeys err %v, Parse err %v", c.body, err, wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got.UserUUID() != want.UserUUID() {
			t.Errorf("%s: user %q, want %q", c.body, got.UserUUID(), want.UserUUID())
		}
		switch {
		case want.Lesson != nil:
			if *got.Lesson != (subjects.EnricherLessonEvent{UserUUID: want.Lesson.UserUUID, Language: want.Lesson.Language}) {
				t.Errorf("%s: lesson %+v, want the keys of %+v", c.body, *got.Lesson, *want.Lesson)
			}
		case want.User != nil:
			if *got.User.Country != *want.User.Country || *got.User.Active != *want.User.Active {
				t.Errorf("%s: user %+v, want %+v", c.body, *got.User, *want.User)
			}
		case want.Subscription != nil:
			if *got.Subscription.SubscriptionPeriod != *want.Subscription.SubscriptionPeriod {
				t.Errorf("%s: subscription %+v, want %+v", c.body, *got.Subscription, *want.Subscription)
			}
		}
	}
}

// HasAny sees the members of the event parsed last, escaped names decoded,
// and nothing of an earlier one.
func TestHasAnySeesTheLastEventsMembers(t *testing.T) {
	var p enricherevents.Parser
	if _, err := p.ParseKeys(subjects.EnricherKindLesson, []byte(`{"user_uuid":"u1","language":"es","countr\u0079":"SE","a":1}`)); err != nil {
		t.Fatal(err)
	}
	if !p.HasAny("enrichment", "country") {
		t.Error("an escaped country member not seen")
	}
	if _, err := p.ParseKeys(subjects.EnricherKindLesson, []byte(`{"user_uuid":"u1","language":"es","meta":{"country":"SE"}}`)); err != nil {
		t.Fatal(err)
	}
	if p.HasAny("country") || !p.HasAny("meta") {
		t.Error("members of the second event: a nested name counted, or the top-level one missed")
	}
}
