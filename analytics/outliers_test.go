package analytics_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/analytics"
	"jetfleet/internal/testenv"
)

// week is the Monday the synthetic samples fall in.
var week = time.Date(2024, 12, 2, 0, 0, 0, 0, time.UTC)

type sample struct {
	video, channel string
	at             time.Time
	views          uint64
}

type change struct {
	video, kind string
	at          time.Time
}

// hourly returns n hourly samples of video from first on, views(h) at the
// h-th hour.
func hourly(video, channel string, first time.Time, n int, views func(h int) uint64) []sample {
	var out []sample
	for h := range n {
		out = append(out, sample{video, channel, first.Add(time.Duration(h) * time.Hour), views(h)})
	}
	return out
}

func insertOutlierData(t *testing.T, conn driver.Conn, samples []sample, changes []change) {
	t.Helper()
	ctx := testenv.Context(t, time.Minute)
	b, err := conn.PrepareBatch(ctx, "INSERT INTO video_samples (video_id, channel_id, sampled_at, views, likes, title, thumb_hash)")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		if err := b.Append(s.video, s.channel, s.at, s.views, uint64(0), "t", "h"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	if len(changes) == 0 {
		return
	}
	cb, err := conn.PrepareBatch(ctx, "INSERT INTO video_changes (video_id, changed_at, kind, before, after)")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if err := cb.Append(c.video, c.at, c.kind, "old", "new"); err != nil {
			t.Fatal(err)
		}
	}
	if err := cb.Send(); err != nil {
		t.Fatal(err)
	}
}

// syntheticWeek is a week whose change outliers are known (channel
// outliers are the band's: workers/tracker tests them through
// OutliersOfWeek). Channel "changes": "swap" gains 10 views an hour before
// its thumbnail change and 50 after (lift 5); "flat" keeps 10 after its
// change; "twice" jumps but changed twice that week; "both" changed title
// and thumbnail in one sample and jumps.
func syntheticWeek() ([]sample, []change) {
	var s []sample
	first, at := week.Add(24*time.Hour), week.Add(48*time.Hour)
	jump := func(h int) uint64 { // 10 an hour, 50 an hour from the 24th hour (the change)
		if h < 24 {
			return 10 * uint64(h)
		}
		return 240 + 50*uint64(h-24)
	}
	s = append(s, hourly("swap", "changes", first, 72, jump)...)
	s = append(s, hourly("flat", "changes", first, 72, func(h int) uint64 { return 10 * uint64(h) })...)
	s = append(s, hourly("twice", "changes", first, 72, jump)...)
	s = append(s, hourly("both", "changes", first, 72, jump)...)
	c := []change{
		{"swap", "thumbnail", at},
		{"flat", "title", at},
		{"twice", "thumbnail", at.Add(-8 * time.Hour)},
		{"twice", "thumbnail", at},
		{"both", "thumbnail", at},
		{"both", "title", at},
		// Last week's change does not count this week.
		{"flat", "thumbnail", week.Add(-48 * time.Hour)},
	}
	return s, c
}

func TestChangeOutliersFindsTheKnownChangeOutliersOfASyntheticWeek(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 2*time.Minute)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	samples, changes := syntheticWeek()
	insertOutlierData(t, conn, samples, changes)

	if err := analytics.ChangeOutliers(ctx, conn, week.Add(3*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := analytics.WeekOutliers(ctx, conn, week)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range got {
		names = append(names, o.VideoID+":"+o.Kind)
	}
	slices.Sort(names)
	want := []string{"both:thumbnail+title", "swap:thumbnail"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("outliers = %v, want %v (rows %+v)", names, want, got)
	}
	for _, o := range got {
		if o.VideoID == "swap" && (o.Score < 4.99 || o.Score > 5.01 || o.Expected < 9.99 || o.Expected > 10.01) {
			t.Errorf("swap: lift %v from %v views/hour, want 5 from 10", o.Score, o.Expected)
		}
	}
}

func TestChangeOutliersTwiceForAWeekKeepsOneRowEach(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 2*time.Minute)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	samples, changes := syntheticWeek()
	insertOutlierData(t, conn, samples, changes)
	for range 2 {
		if err := analytics.ChangeOutliers(ctx, conn, week); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, conn, "outliers FINAL"); n != 2 {
		t.Errorf("outliers after two runs: %d rows, want 2", n)
	}
}

func TestWeekStartIsMondayMidnightUTC(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"2024-12-02T00:00:00Z", "2024-12-02T00:00:00Z"},
		{"2024-12-08T23:59:59Z", "2024-12-02T00:00:00Z"},
		{"2024-12-09T03:00:00+05:30", "2024-12-02T00:00:00Z"}, // still Sunday in UTC
		{"2024-12-09T06:00:00Z", "2024-12-09T00:00:00Z"},
	} {
		in, _ := time.Parse(time.RFC3339, c.in)
		if got := analytics.WeekStart(in).Format(time.RFC3339); got != c.want {
			t.Errorf("WeekStart(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}
