package counterdb_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"jetfleet/analytics"
	"jetfleet/analytics/counterdb"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) {
	testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c })
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
