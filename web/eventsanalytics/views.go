package eventsanalytics

import (
	"fmt"
	"time"

	"jetfleet/analytics"
	"jetfleet/internal/eventpost"
	"jetfleet/internal/events"
	"jetfleet/web/chart"
)

type pageData struct {
	Event         events.Event
	Organiser     bool // the signed-in admin is the organiser (fees are theirs)
	Summary       eventpost.Summary
	Fee           *eventpost.FeeRecord
	Prices        eventpost.Prices
	ScheduledAt   time.Time
	Over          bool
	CanAccumulate bool
	ShowLive      bool
	Live          LivePanel
	Card          events.Organiser
	CardAvailable bool
	Notice        string
}

type feesData struct {
	Card          events.Organiser
	CardAvailable bool
	Prices        eventpost.Prices
	Rows          []feeRow
	Notice        string
}

type feeRow struct {
	Event events.Event
	Fee   *eventpost.FeeRecord
}

// LivePanel is an event's live figures: participants connected now
// (distinct heartbeats in the last two minutes), messages per minute over
// the last half hour, and the top contributors. Render it with Live.
type LivePanel struct {
	ConnectedNow uint64
	LastMinute   uint64 // messages in the last complete minute
	PerMinute    []chart.Point
	Top          []Contributor
	Loc          *time.Location
}

// Contributor is a participant and the messages they posted.
type Contributor struct {
	Name     string
	Messages uint64
}

func pointOf(m analytics.MinuteCount) chart.Point {
	return chart.Point{At: m.Minute, Value: float64(m.Count)}
}

func overTime(s eventpost.Summary) []chart.Point {
	var out []chart.Point
	for _, p := range s.OverTime {
		out = append(out, chart.Point{At: p.At, Value: float64(p.Count)})
	}
	return out
}

func attendance(s eventpost.Summary) []chart.Point {
	var out []chart.Point
	for _, m := range s.AttendanceCurve {
		out = append(out, pointOf(m))
	}
	return out
}

func distribution(s eventpost.Summary) []chart.Bar {
	var out []chart.Bar
	for _, b := range s.Distribution {
		out = append(out, chart.Bar{Label: b.Label, Value: float64(b.Count)})
	}
	return out
}

func byTicket(s eventpost.Summary) []chart.Bar {
	var out []chart.Bar
	for _, t := range s.ByTicket {
		out = append(out, chart.Bar{Label: t.Name, Value: float64(t.Count)})
	}
	return out
}

func num[T ~int | ~int64 | ~uint64](n T) string { return analytics.GroupDigits(int64(n)) }

func duration(sec int64) string {
	if sec <= 0 {
		return "–"
	}
	d := time.Duration(sec) * time.Second
	if d < time.Minute {
		return fmt.Sprintf("%ds", sec)
	}
	return fmt.Sprintf("%dm %02ds", sec/60, sec%60)
}

func when(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "–"
	}
	return t.In(loc).Format("Mon 2 Jan 2006, 15:04 MST")
}

func notice(code string) string {
	switch code {
	case "card-saved":
		return "Your card is saved: platform fees are charged to it after each event."
	case "card-incomplete":
		return "The card was not saved: Stripe's page was left before it finished."
	case "fee-retry":
		return "The fee is being charged to your card again; reload in a few seconds."
	case "accumulating":
		return "The figures are being accumulated; reload in a few seconds."
	}
	return ""
}

func stateLabel(f eventpost.FeeRecord) string {
	switch f.State {
	case eventpost.FeePaid:
		return "charged"
	case eventpost.FeeWaived:
		return "nothing to pay"
	case eventpost.FeeFlagged:
		return "needs your action"
	case eventpost.FeeRetrying:
		return fmt.Sprintf("declined, retrying (attempt %d of 4)", f.Attempt)
	}
	return "being charged"
}

func priceLine(p eventpost.Prices) string {
	return fmt.Sprintf("The first %d registered participants of an event are free; each one beyond costs %s.", p.FreeParticipants, events.FormatMinor(p.PerParticipantMinor, p.Currency))
}
