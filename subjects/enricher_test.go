package subjects_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestInputTransformPartitionsByUserUUID(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	stream, err := js.Stream(ctx, subjects.InputStream)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	// Enough users that every partition gets some (hashing is not even).
	const users = 8 * subjects.EnricherPartitions
	for i := range users {
		uuid := fmt.Sprintf("user-%d", i)
		ack, err := js.Publish(ctx, subjects.EnricherInput(subjects.KindLesson, uuid), []byte(`{}`))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		msg, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		p := subjects.EnricherPartitionOf(uuid)
		seen[p] = true
		want := strings.Replace(subjects.EnricherPartitionFilter(p), "*", subjects.KindLesson, 1)
		if msg.Subject != want {
			t.Errorf("user %s stored as %s, want %s", uuid, msg.Subject, want)
		}
		if kind := subjects.EnricherStoredKind(msg.Subject); kind != subjects.KindLesson {
			t.Errorf("kind of %s = %q", msg.Subject, kind)
		}
	}
	if len(seen) != subjects.EnricherPartitions {
		t.Errorf("%d users spread over %d partitions, want all %d", users, len(seen), subjects.EnricherPartitions)
	}
}

func TestParseEventReportsEveryProblem(t *testing.T) {
	cases := []struct {
		name, kind, body string
		problems         []string // substrings, one per expected problem
	}{
		{"valid user", subjects.KindUser, `{"operation":"create","uuid":"u1","country":"DE","active":true,"extra":1}`, nil},
		{"valid subscription", subjects.KindSubscription, `{"operation":"update","user_uuid":"u1","language":"es","subscription_period":30}`, nil},
		{"valid lesson", subjects.KindLesson, `{"user_uuid":"u1","language":"es","completed_lessons_in_course":3}`, nil},
		{"nested, escaped and spaced values", subjects.KindLesson, " { \"user_uuid\" : \"u1\" ,\n \"lang\\u0075age\":\"es\", \"x\": {\"a\":[1,\"}\"]}, \"title\":\"a\\\"b\" } ", nil},
		{"not an object", subjects.KindUser, `[1,2]`, []string{"body: must be one JSON object"}},
		{"not json", subjects.KindLesson, `{"user_uuid":`, []string{"body: must be one JSON object"}},
		{"unknown kind", "course", `{}`, []string{`kind "course"`}},
		{"missing identifiers", subjects.KindSubscription, `{"operation":"create"}`, []string{"user_uuid: required", "language: required"}},
		{"unknown operation", subjects.KindUser, `{"operation":"delete","uuid":"u1"}`, []string{`operation: must be "create" or "update", got "delete"`}},
		{"wrong types", subjects.KindUser, `{"operation":"create","uuid":"u1","active":"yes","country":7}`,
			[]string{"active: must be a boolean, got a string", "country: must be a string, got the number 7"}},
		{"fractional integer", subjects.KindLesson, `{"user_uuid":"u1","language":"es","percentage_completed_in_course":1.5}`,
			[]string{"percentage_completed_in_course: must be an integer"}},
		{"repeated member: the last one counts", subjects.KindLesson, `{"user_uuid":"u1","language":"es","title":7,"title":"ok"}`, nil},
		{"wrong pass-through types, all named", subjects.KindLesson, `{"user_uuid":"u1","language":"es","title":7,"course_uuid":true,"number_of_lessons_in_course":"20"}`,
			[]string{"course_uuid: must be a string, got a boolean", "number_of_lessons_in_course: must be an integer, got a string", "title: must be a string, got the number 7"}},
		{"null identifier", subjects.KindLesson, `{"user_uuid":null,"language":"es"}`, []string{"user_uuid: must be a string, got null"}},
		{"identifier not a key", subjects.KindLesson, `{"user_uuid":"a.b","language":"es"}`, []string{"user_uuid:", "only letters"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := subjects.ParseEvent(c.kind, []byte(c.body))
			if len(c.problems) == 0 {
				if err != nil {
					t.Fatalf("valid event rejected: %v", err)
				}
				if ev.Kind != c.kind || ev.UserUUID() != "u1" {
					t.Fatalf("parsed %+v", ev)
				}
				return
			}
			var verr *subjects.ValidationError
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

func TestUpdateChangesOnlyTheFieldsItCarries(t *testing.T) {
	create, err := subjects.ParseEvent(subjects.KindUser, []byte(`{"operation":"create","uuid":"u1","name":"Ada","country":"DE","active":true}`))
	if err != nil {
		t.Fatal(err)
	}
	update, err := subjects.ParseEvent(subjects.KindUser, []byte(`{"operation":"update","uuid":"u1","country":"FR","active":false}`))
	if err != nil {
		t.Fatal(err)
	}
	var u subjects.UserState
	u.Apply(create.User, 1)
	u.Apply(update.User, 2)
	if *u.Name != "Ada" || *u.Country != "FR" || *u.Active != false || u.Seq != 2 {
		t.Fatalf("state after update: name=%v country=%v active=%v seq=%d", *u.Name, *u.Country, *u.Active, u.Seq)
	}
}

func TestSubscriptionKeySplitsBackIntoUserAndLanguage(t *testing.T) {
	for _, c := range []struct{ user, lang string }{{"u1", "es"}, {"user-0000042", "pt-BR"}, {"a_b", "en"}} {
		u, l := subjects.EnricherSubKeyParts(subjects.EnricherSubKey(c.user, c.lang))
		if u != c.user || l != c.lang {
			t.Errorf("EnricherSubKey(%q, %q) splits into %q, %q", c.user, c.lang, u, l)
		}
	}
}

// ParseEvent fills every lesson field from the member validation checked,
// by its exact name: a look-alike spelling (USER_UUID, Course_UUID) is an
// extra property, never read in its place.
func TestParseEventReadsLessonFieldsByTheirValidatedNames(t *testing.T) {
	ev, err := subjects.ParseEvent(subjects.KindLesson, []byte(`{"user_uuid":"u1","USER_UUID":"u2","language":"es","Language":"de",
		"course_uuid":"c1","Course_UUID":"c2","title":"T","number_of_lessons_in_course":20,"completed_lessons_in_course":4,"percentage_completed_in_course":20,"content_release_id":"r1","course_title":"C"}`))
	if err != nil {
		t.Fatal(err)
	}
	l := ev.Lesson
	if l.UserUUID != "u1" || l.Language != "es" || *l.CourseUUID != "c1" || *l.Title != "T" || *l.CourseTitle != "C" || *l.ContentReleaseID != "r1" ||
		*l.NumberOfLessonsInCourse != 20 || *l.CompletedLessonsInCourse != 4 || *l.PercentageCompletedInCourse != 20 {
		t.Errorf("lesson %+v", l)
	}
	out, err := subjects.ParseEnrichedLesson([]byte(`{"user_uuid":"u1","language":"es","COUNTRY":"XX","country":"DE","subscription_status":null,"subscription_type":"pro","enrichment":"missing_subscription"}`))
	if err != nil {
		t.Fatal(err)
	}
	if out.UserUUID != "u1" || *out.Country != "DE" || out.SubscriptionStatus != nil || *out.SubscriptionType != "pro" || out.Enrichment != "missing_subscription" {
		t.Errorf("enriched lesson %+v", out)
	}
	if _, err := subjects.ParseEnrichedLesson([]byte(`{"user_uuid":"u1","language":"es","country":7}`)); err == nil ||
		!strings.Contains(err.Error(), "country: must be a string or null") || !strings.Contains(err.Error(), "enrichment: required") {
		t.Errorf("bad enriched lesson: %v", err)
	}
}
