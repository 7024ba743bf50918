package counterdb_test

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"jetfleet/analytics"
	"jetfleet/analytics/counterdb"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

var ch *testenv.ClickHouse

// The server runs at UTC+05:30: every answer below must still be bucketed
// in UTC.
func TestMain(m *testing.M) {
	testenv.ClickHouseMainWith(m, testenv.ClickHouseOptions{Timezone: testenv.NonUTCZone}, func(c *testenv.ClickHouse) { ch = c })
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// The read planner takes whole hours from counter_hour and the ragged ends
// from counter_minute. Whatever the range, totals and series must equal a
// brute-force sum of the minute rows in [start, end) truncated to minutes:
// ranges starting and ending mid-minute, mid-hour, mid-day, on exact hours
// and days, inside one hour, and spanning years.
func TestStatsEqualMinuteSumsAtEveryRangeBoundary(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 60*time.Second)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	// Dense minutes around two year ends, sparse ones (every ~9 h) from
	// 2023 to 2026, and the same minutes for another video and type that
	// must never leak into the answers.
	var rows []counterdb.Row
	add := func(m time.Time, i int) {
		r := counterdb.Row{Tenant: "acme", VideoID: "v", Type: subjects.CounterView, Minute: m, Events: uint64(1 + i%5), Total: int64(i%11 - 3)}
		rows = append(rows, r)
		r.VideoID, r.Events = "other", 1000
		rows = append(rows, r)
		r.VideoID, r.Type = "v", subjects.CounterLike
		rows = append(rows, r)
	}
	i := 0
	for _, ye := range []string{"2024-12-31T21:00:00Z", "2025-12-31T22:30:00Z"} {
		for m := at(ye); m.Before(at(ye).Add(6 * time.Hour)); m = m.Add(7 * time.Minute) {
			add(m, i)
			i++
		}
	}
	for m := at("2023-03-01T00:00:00Z"); m.Before(at("2026-03-01T00:00:00Z")); m = m.Add(9*time.Hour + 13*time.Minute) {
		add(m, i)
		i++
	}
	if err := counterdb.Flush(ctx, conn, "", rows, nil); err != nil {
		t.Fatal(err)
	}
	want := func(start, end time.Time, step int64) (counterdb.Totals, map[int64]counterdb.Totals) {
		s, e := start.Truncate(time.Minute), end.Truncate(time.Minute)
		var tot counterdb.Totals
		series := map[int64]counterdb.Totals{}
		for _, r := range rows {
			if r.VideoID != "v" || r.Type != subjects.CounterView || r.Minute.Before(s) || !r.Minute.Before(e) {
				continue
			}
			tot.Events += r.Events
			tot.Total += r.Total
			if step > 0 {
				b := r.Minute.Unix() / step * step
				p := series[b]
				p.Events += r.Events
				p.Total += r.Total
				series[b] = p
			}
		}
		return tot, series
	}
	ranges := []struct{ name, start, end string }{
		{"mid-minute to mid-minute", "2024-12-31T21:03:30Z", "2025-01-01T02:59:45Z"},
		{"mid-hour to mid-hour", "2024-12-31T21:31:00Z", "2025-01-01T01:17:00Z"},
		{"inside one hour", "2024-12-31T23:05:10Z", "2024-12-31T23:49:50Z"},
		{"exact hours", "2024-12-31T22:00:00Z", "2025-01-01T02:00:00Z"},
		{"mid-day to mid-day", "2024-06-15T13:37:00Z", "2025-06-20T08:11:30Z"},
		{"exact days", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"spanning years", "2023-02-27T10:10:10Z", "2026-01-01T01:01:01Z"},
		{"spanning every row", "2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"},
		{"year end across hour edge", "2025-12-31T23:59:00Z", "2026-01-01T00:01:00Z"},
	}
	// Start and end are truncated to minutes: a range inside one minute is
	// empty and refused.
	if _, _, err := counterdb.Stats(ctx, conn, counterdb.Query{Tenant: "acme", VideoID: "v", Type: subjects.CounterView,
		Start: at("2024-12-31T23:07:10Z"), End: at("2024-12-31T23:07:50Z")}); !errors.Is(err, counterdb.ErrBadQuery) {
		t.Errorf("range inside one minute: %v, want ErrBadQuery", err)
	}
	for _, rg := range ranges {
		start, end := at(rg.start), at(rg.end)
		for _, step := range []counterdb.Step{counterdb.StepNone, counterdb.StepMinute, counterdb.StepHour, counterdb.StepDay} {
			t.Run(fmt.Sprintf("%s step %q", rg.name, step), func(t *testing.T) {
				stepSec := map[counterdb.Step]int64{counterdb.StepMinute: 60, counterdb.StepHour: 3600, counterdb.StepDay: 86400}[step]
				if stepSec > 0 && end.Sub(start) > counterdb.MaxSeriesPoints*time.Duration(stepSec)*time.Second {
					t.Skip("more hourly points than a series allows")
				}
				got, series, err := counterdb.Stats(ctx, conn, counterdb.Query{Tenant: "acme", VideoID: "v", Type: subjects.CounterView, Start: start, End: end, Step: step})
				if err != nil {
					t.Fatal(err)
				}
				wantTot, wantSeries := want(start, end, stepSec)
				if got != wantTot {
					t.Errorf("totals %+v, want %+v", got, wantTot)
				}
				if step == counterdb.StepNone {
					return
				}
				gotSeries := map[int64]counterdb.Totals{}
				for _, p := range series {
					gotSeries[p.Start.Unix()] = p.Totals
				}
				for b, w := range wantSeries {
					if w.Events > 0 && gotSeries[b] != w {
						t.Errorf("point %s: %+v, want %+v", time.Unix(b, 0).UTC(), gotSeries[b], w)
					}
				}
				if len(gotSeries) != len(wantSeries) {
					t.Errorf("%d points, want %d", len(gotSeries), len(wantSeries))
				}
			})
		}
	}
}

// An event at 10:15Z belongs to the UTC hour [10:00, 11:00) and the UTC day
// of 2024-12-02, also on a server whose zone is UTC+05:30 (where the local
// hour starts at :30 UTC and the local day at 18:30Z).
func TestHourAndDayAnswersAreUTCOnANonUTCServer(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 60*time.Second)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	rows := []counterdb.Row{
		{Tenant: "acme", VideoID: "v", Type: subjects.CounterView, Minute: at("2024-12-02T10:15:00Z"), Events: 1, Total: 1},
		{Tenant: "acme", VideoID: "v", Type: subjects.CounterView, Minute: at("2024-12-02T20:00:00Z"), Events: 2, Total: 2},
	}
	if err := counterdb.Flush(ctx, conn, "", rows, nil); err != nil {
		t.Fatal(err)
	}
	count := func(start, end string, step counterdb.Step) (uint64, []counterdb.Point) {
		t.Helper()
		tot, series, err := counterdb.Stats(ctx, conn, counterdb.Query{Tenant: "acme", VideoID: "v", Type: subjects.CounterView,
			Start: at(start), End: at(end), Step: step})
		if err != nil {
			t.Fatal(err)
		}
		return tot.Events, series
	}
	for _, c := range []struct {
		start, end string
		want       uint64
	}{
		{"2024-12-02T10:00:00Z", "2024-12-02T11:00:00Z", 1},
		{"2024-12-02T09:00:00Z", "2024-12-02T10:00:00Z", 0},
		{"2024-12-02T00:00:00Z", "2024-12-03T00:00:00Z", 3},
		{"2024-12-01T00:00:00Z", "2024-12-02T00:00:00Z", 0},
		{"2024-12-02T11:00:00Z", "2024-12-03T00:00:00Z", 2},
	} {
		if got, _ := count(c.start, c.end, counterdb.StepNone); got != c.want {
			t.Errorf("[%s, %s): %d events, want %d", c.start, c.end, got, c.want)
		}
	}
	_, hours := count("2024-12-02T00:00:00Z", "2024-12-03T00:00:00Z", counterdb.StepHour)
	if len(hours) != 2 || !hours[0].Start.Equal(at("2024-12-02T10:00:00Z")) || !hours[1].Start.Equal(at("2024-12-02T20:00:00Z")) {
		t.Errorf("hourly series %+v, want points at 10:00Z and 20:00Z", hours)
	}
	_, days := count("2024-12-01T00:00:00Z", "2024-12-04T00:00:00Z", counterdb.StepDay)
	if len(days) != 1 || !days[0].Start.Equal(at("2024-12-02T00:00:00Z")) || days[0].Events != 3 {
		t.Errorf("daily series %+v, want one point of 3 events at 2024-12-02T00:00Z", days)
	}
	top, err := counterdb.TopVideos(ctx, conn, "acme", subjects.CounterView, at("2024-12-02T10:00:00Z"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 1 || top[0].Events != 3 {
		t.Errorf("top videos since 10:00Z: %+v, want v with 3 events", top)
	}
}

// A deployment that ran 0002's zone-dependent hour view gets UTC hours from
// the next migration: its wrongly bucketed hour rows are refilled from the
// minute rows, and later flushes land in UTC hours too.
func TestMigrationRebucketsHoursOfAnOldNonUTCDeployment(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 60*time.Second)
	old := fstest.MapFS{}
	for _, name := range []string{"0001_video_samples.sql", "0002_counter.sql", "0003_enricher.sql"} {
		b, err := fs.ReadFile(analytics.Schema(), name)
		if err != nil {
			t.Fatal(err)
		}
		old[name] = &fstest.MapFile{Data: b}
	}
	if _, err := analytics.Migrate(ctx, conn, old, nil); err != nil {
		t.Fatal(err)
	}
	row := counterdb.Row{Tenant: "acme", VideoID: "v", Type: subjects.CounterView, Minute: at("2024-12-02T10:15:00Z"), Events: 1, Total: 1}
	if err := counterdb.Flush(ctx, conn, "", []counterdb.Row{row}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	row.Minute = at("2024-12-02T10:45:00Z")
	if err := counterdb.Flush(ctx, conn, "", []counterdb.Row{row}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		start, end string
		want       uint64
	}{
		{"2024-12-02T10:00:00Z", "2024-12-02T11:00:00Z", 2},
		{"2024-12-02T09:00:00Z", "2024-12-02T10:00:00Z", 0},
		{"2024-12-02T10:00:00Z", "2024-12-02T12:00:00Z", 2},
	} {
		tot, _, err := counterdb.Stats(ctx, conn, counterdb.Query{Tenant: "acme", VideoID: "v", Type: subjects.CounterView, Start: at(c.start), End: at(c.end)})
		if err != nil {
			t.Fatal(err)
		}
		if tot.Events != c.want {
			t.Errorf("[%s, %s): %d events, want %d", c.start, c.end, tot.Events, c.want)
		}
	}
}

// ClickHouse's sum(Int64) wraps. A sum whose true value is in range is
// exact even when a partial sum passed 2^63 (hour rows and ragged minutes
// add up in any order), and one that is out of range is flagged, never
// returned as a wrapped number, for totals and for each series point.
func TestSumsPastTheInt64RangeAreFlaggedAndInRangeSumsExact(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 60*time.Second)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	const max = int64(^uint64(0) >> 1)
	row := func(video, minute string, total int64) counterdb.Row {
		return counterdb.Row{Tenant: "acme", VideoID: video, Type: subjects.CounterView, Minute: at(minute), Events: 1, Total: total}
	}
	rows := []counterdb.Row{
		// In range: 9e18 + 9e18 - 9e18 = 9e18, with a partial sum past 2^63.
		// (Sums within 0.3% of 2^63 are flagged too: the float check's margin.)
		row("in", "2024-12-02T10:15:00Z", 9e18), row("in", "2024-12-02T11:15:00Z", 9e18), row("in", "2024-12-02T12:15:00Z", -9e18),
		// Out of range: max-10 + 20.
		row("out", "2024-12-02T10:15:00Z", max-10), row("out", "2024-12-02T11:15:00Z", 20),
	}
	if err := counterdb.Flush(ctx, conn, "", rows, nil); err != nil {
		t.Fatal(err)
	}
	for _, step := range []counterdb.Step{counterdb.StepNone, counterdb.StepDay} {
		for _, rg := range [][2]string{{"2024-12-02T00:00:00Z", "2024-12-03T00:00:00Z"}, {"2024-12-02T10:10:00Z", "2024-12-02T12:20:00Z"}} {
			in, _, err := counterdb.Stats(ctx, conn, counterdb.Query{Tenant: "acme", VideoID: "in", Type: subjects.CounterView, Start: at(rg[0]), End: at(rg[1]), Step: step})
			if err != nil {
				t.Fatal(err)
			}
			if in.SumOverflow || in.Total != 9e18 {
				t.Errorf("step %q %v: in-range sum %+v, want 9e18", step, rg, in)
			}
			out, series, err := counterdb.Stats(ctx, conn, counterdb.Query{Tenant: "acme", VideoID: "out", Type: subjects.CounterView, Start: at(rg[0]), End: at(rg[1]), Step: step})
			if err != nil {
				t.Fatal(err)
			}
			if !out.SumOverflow || out.Events != 2 {
				t.Errorf("step %q %v: out-of-range sum %+v, want SumOverflow with 2 events", step, rg, out)
			}
			if step == counterdb.StepDay && (len(series) != 1 || !series[0].SumOverflow) {
				t.Errorf("step day %v: series %+v, want one point with SumOverflow", rg, series)
			}
		}
	}
}
