package subjects_test

import (
	"testing"

	"jetfleet/subjects"
)

// BenchmarkParseLesson is the Enricher's per-lesson parse (go test -bench).
func BenchmarkParseLesson(b *testing.B) {
	body := []byte(`{"user_uuid":"user-0001234","language":"es","title":"Lesson 3","course_uuid":"c-12","course_title":"Course","number_of_lessons_in_course":20,"completed_lessons_in_course":4,"percentage_completed_in_course":20,"content_release_id":"r42"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := subjects.ParseEvent(subjects.KindLesson, body); err != nil {
			b.Fatal(err)
		}
	}
}
