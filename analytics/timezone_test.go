package analytics_test

import (
	"strings"
	"testing"
	"time"

	"jetfleet/analytics"
	"jetfleet/internal/testenv"
)

// The package's server runs at UTC+05:30 (TestMain). The Enricher's lesson
// buckets are UTC hours and days, and the Tracker's samples come back at the
// instants they were written, whatever the server's zone.
func TestTrackerAndEnricherQueriesAreUTCOnANonUTCServer(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 60*time.Second)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }

	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+analytics.EnricherLessonsTable+" ("+strings.Join(analytics.EnricherLessonsColumns, ", ")+")")
	if err != nil {
		t.Fatal(err)
	}
	for i, ts := range []string{"2024-12-02T10:15:00Z", "2024-12-02T10:45:00Z", "2024-12-02T20:00:00Z"} {
		if err := b.Append(at(ts), uint64(i+1), "u", "en", "c", "premium", "active", "IN", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		step time.Duration
		want []string // bucket starts, oldest first
	}{
		{time.Hour, []string{"2024-12-02T10:00:00Z", "2024-12-02T20:00:00Z"}},
		{24 * time.Hour, []string{"2024-12-02T00:00:00Z"}},
	} {
		counts, err := analytics.EnricherLessonCounts(ctx, conn, analytics.LessonScope{All: true}, at("2024-12-02T00:00:00Z"), at("2024-12-03T00:00:00Z"), c.step, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, lc := range counts {
			got = append(got, lc.Bucket.UTC().Format(time.RFC3339))
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("step %v: buckets %v, want %v", c.step, got, c.want)
		}
	}

	sb, err := conn.PrepareBatch(ctx, "INSERT INTO video_samples (video_id, channel_id, sampled_at, views, likes, title, thumb_hash)")
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Append("v", "c", at("2024-12-02T10:15:00Z"), uint64(7), uint64(0), "t", "h"); err != nil {
		t.Fatal(err)
	}
	if err := sb.Send(); err != nil {
		t.Fatal(err)
	}
	samples, err := analytics.VideoSamples(ctx, conn, "v", at("2024-12-02T10:15:00Z"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 1 || !samples[0].At.Equal(at("2024-12-02T10:15:00Z")) {
		t.Errorf("samples since 10:15Z: %+v, want the one at 10:15Z", samples)
	}
}
