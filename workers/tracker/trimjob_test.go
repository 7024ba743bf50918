package tracker

import (
	"fmt"
	"testing"

	"jetfleet/analytics/bands"
	"jetfleet/subjects"
)

func TestAChannelPastTheBudgetKeepsItsNewestVideosWholeAndTheLatestSampleOfTheRest(t *testing.T) {
	job := subjects.TrackerChannelWeek{Channel: "busy"}
	for i := range 100 { // 100 videos × 300 samples: past channelBudget
		v := subjects.TrackerWeekCurve{ID: fmt.Sprintf("v%03d", i), First: int64(1000 * i)}
		for s := range 300 {
			v.At = append(v.At, int64(1000*i+300-s)) // newest first: order must not matter
			v.Views = append(v.Views, uint64(300-s))
		}
		job.Videos = append(job.Videos, v)
	}
	trimJob(&job)
	total := 0
	for i, v := range job.Videos {
		total += len(v.At)
		whole := i < 2*bands.Videos
		if want := fmt.Sprintf("v%03d", 99-i); v.ID != want {
			t.Fatalf("video %d is %s, want %s (newest first)", i, v.ID, want)
		}
		if whole && len(v.At) != 300 {
			t.Errorf("%s (among the newest %d) kept %d samples, want 300", v.ID, 2*bands.Videos, len(v.At))
		}
		if !whole && (len(v.At) != 1 || v.Views[0] != 300 || v.At[0] != v.First+300) {
			t.Errorf("%s kept %v/%v, want only its latest sample", v.ID, v.At, v.Views)
		}
	}
	if total > channelBudget {
		t.Errorf("trimmed job carries %d samples, over the budget of %d", total, channelBudget)
	}

	small := subjects.TrackerChannelWeek{Videos: job.Videos[:2*bands.Videos]}
	trimJob(&small)
	if len(small.Videos[0].At) != 300 {
		t.Error("a job within the budget was trimmed")
	}
}
