package tracker

import (
	"strings"
	"testing"
	"time"

	"jetfleet/subjects"
)

// A running test held for YouTube's quota says so on its page, and when it
// resumes, in UTC and Pacific time.
func TestStatusWordsOfATestWaitingForYouTubeQuota(t *testing.T) {
	at, _ := time.Parse(time.RFC3339, "2027-03-14T08:05:00Z")
	got := statusWords(subjects.TrackerABTest{Status: subjects.TrackerABRunning, QuotaResumes: at})
	if want := "waiting for YouTube quota (resumes at 14 Mar 08:05 UTC, 00:05 PST Pacific)"; got != want {
		t.Fatalf("statusWords = %q, want %q", got, want)
	}
	if got := statusWords(subjects.TrackerABTest{Status: subjects.TrackerABRunning}); strings.Contains(got, "quota") {
		t.Fatalf("statusWords = %q for a test not waiting", got)
	}
}
