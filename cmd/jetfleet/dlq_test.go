package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/deadletter"
)

// Every work stream's dead letters can be replayed: `jetfleet dlq replay`
// publishes each back to a subject its stream takes (for INPUT the stored,
// partitioned subject), and the role handles it again, which here, the
// payload being garbage, dead-letters it again marked as a replay.
func TestDLQReplayOfEachWorkStreamIsHandledAgain(t *testing.T) {
	dev := startDev(t)
	_, js := dev.connect(t)
	tctx := testenv.Context(t, 90*time.Second)

	// One subject each role consumes, per stream.
	streams := map[string]string{
		subjects.EnricherPartitionStream(subjects.EnricherPartitionOf("u1")): subjects.EnricherInput(subjects.EnricherKindLesson, "u1"),
		subjects.EnricherOutputStream:                                        subjects.EnricherOutput(subjects.EnricherKindLesson),
		subjects.MailStream:                                                  subjects.MailSend,
		subjects.TrackerStream:                                               subjects.TrackerChannelJob("UCgarbage"),
		subjects.CounterStream:                                               subjects.CounterSubject(0),
		subjects.GDPRStream:                                                  subjects.GDPRSubject("export"),
		subjects.EventsHoldsStream:                                           subjects.EventsHoldRelease("garbage"),
	}
	for stream, subj := range streams {
		if _, err := js.Publish(tctx, subj, []byte("garbage, not an event")); err != nil {
			t.Fatalf("publish to %s (%s): %v", subj, stream, err)
		}
	}
	first := map[string]deadletter.Entry{}
	testenv.Eventually(t, 60*time.Second, "one dead letter per stream", func() bool {
		for stream := range streams {
			if _, ok := first[stream]; ok {
				continue
			}
			if e, err := deadletter.List(tctx, js, stream, 0); err == nil && len(e) == 1 {
				first[stream] = e[0]
			}
		}
		if len(first) < len(streams) {
			t.Logf("dead letters so far: %d of %d", len(first), len(streams))
			return false
		}
		return true
	})
	vars := dev.vars()
	for stream, e := range first {
		if got := runCmd(t, vars, "dlq", "replay", strconv.FormatUint(e.Seq, 10)); !strings.Contains(got, "replayed dead letter") {
			t.Fatalf("replay %s dead letter %d: %s", stream, e.Seq, got)
		}
	}
	handled := map[string]bool{}
	testenv.Eventually(t, 60*time.Second, "every replayed dead letter handled again", func() bool {
		for stream, e := range first {
			entries, err := deadletter.List(tctx, js, stream, 0)
			if err != nil {
				continue
			}
			for _, again := range entries {
				if again.Header.Get(subjects.HeaderDLQReplayed) == strconv.FormatUint(e.Seq, 10) {
					handled[stream] = true
				}
			}
		}
		if len(handled) < len(first) {
			t.Logf("handled again so far: %v", handled)
			return false
		}
		return true
	})
}
