// Package eventpost is the Events product after an event (seed 001,
// "Analytics and exports", "Fees"): the event's figures, computed from the
// registrations (KV) and the live app's engagement (ClickHouse) — live
// during the event, accumulated once after it and kept in
// subjects.EventsPostBucket — the platform fee's price table, and the fee
// ledger that makes the off-session charge happen once per event.
//
// The workers/eventspost roles run it when the post-event schedule fires;
// web/events shows it to the event's admins.
package eventpost

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/analytics"
	"jetfleet/internal/events"
)

// Summary is an event's figures.
type Summary struct {
	EventID     string    `json:"event_id"`
	OrganiserID string    `json:"organiser_id"`
	Title       string    `json:"title"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Computed    time.Time `json:"computed"`
	// Final: accumulated after the event and stored; otherwise computed
	// live for a page.
	Final bool `json:"final"`

	// Registrations counts participants who registered: confirmed (free
	// tickets) or paid registrations, not pending, cancelled, expired or
	// refunded ones. The fee is computed from it.
	Registrations int               `json:"registrations"`
	Awaiting      int               `json:"awaiting"`  // submitted, never confirmed (not counted)
	Cancelled     int               `json:"cancelled"` // cancelled, expired or refunded (not counted)
	ByTicket      []TicketCount     `json:"by_ticket"`
	OverTime      []TimeCount       `json:"over_time"` // cumulative counted registrations
	Revenue       []CurrencyRevenue `json:"revenue"`

	Attendees        uint64                  `json:"attendees"` // at least one minute connected
	ConnectedMinutes uint64                  `json:"connected_minutes"`
	Distribution     []Bucket                `json:"distribution"` // attendees by connected time
	AttendanceCurve  []analytics.MinuteCount `json:"attendance_curve"`
	MessagesMain     uint64                  `json:"messages_main"`
	MessagesTeams    uint64                  `json:"messages_teams"`
	Submissions      uint64                  `json:"submissions"`
	Help             HelpFigures             `json:"help"`
}

// TicketCount is the counted registrations of one ticket type.
type TicketCount struct {
	TicketID string `json:"ticket_id"`
	Name     string `json:"name"`
	Count    int    `json:"count"`
}

// TimeCount is a cumulative count at an instant.
type TimeCount struct {
	At    time.Time `json:"at"`
	Count int       `json:"count"`
}

// CurrencyRevenue is ticket revenue in one currency, in minor units: paid
// tickets, less the payments refunded (a payment that came after its seat
// was given away).
type CurrencyRevenue struct {
	Currency string `json:"currency"`
	Gross    int64  `json:"gross"`
	Refunded int64  `json:"refunded"`
	Net      int64  `json:"net"`
}

// Bucket is a range of connected time and the attendees in it.
type Bucket struct {
	Label string `json:"label"`
	Count int    `json:"count"`
}

// HelpFigures are the help desk's figures.
type HelpFigures struct {
	Requests int `json:"requests"`
	Claimed  int `json:"claimed"`
	Resolved int `json:"resolved"`
	// Medians (and 90th percentiles) of time to claim, from raising, and
	// to resolve, from raising; in seconds.
	ClaimMedianSec   int64 `json:"claim_median_sec"`
	ClaimP90Sec      int64 `json:"claim_p90_sec"`
	ResolveMedianSec int64 `json:"resolve_median_sec"`
	ResolveP90Sec    int64 `json:"resolve_p90_sec"`
}

// ConnectedHours is the attendees' connected time in hours.
func (s Summary) ConnectedHours() float64 { return float64(s.ConnectedMinutes) / 60 }

// Messages is every chat message.
func (s Summary) Messages() uint64 { return s.MessagesMain + s.MessagesTeams }

// distribution's upper bounds (minutes, exclusive) and labels.
var distribution = []struct {
	below uint64
	label string
}{{5, "1–4 min"}, {15, "5–14 min"}, {30, "15–29 min"}, {60, "30–59 min"}, {120, "1–2 h"}, {1 << 62, "2 h or more"}}

// Compute works out event e's figures at now from its registrations and,
// when ch is not nil, its engagement.
func Compute(ctx context.Context, svc *events.Service, ch driver.Conn, e events.Event, now time.Time) (Summary, error) {
	s := Summary{EventID: e.ID, OrganiserID: e.OrganiserID, Title: e.Title, Start: e.Start, End: e.End, Computed: now.UTC().Truncate(time.Second)}
	regs, err := svc.AllRegistrations(ctx, e.ID)
	if err != nil {
		return s, fmt.Errorf("registrations of %s: %w", e.ID, err)
	}
	registrations(&s, e, regs)
	if ch == nil {
		return s, nil
	}
	g, err := analytics.EventEngagement(ctx, ch, e.ID)
	if err != nil {
		return s, err
	}
	s.Attendees, s.ConnectedMinutes = g.Attendees, g.ConnectedMinutes
	s.MessagesMain, s.MessagesTeams, s.Submissions = g.MessagesMain, g.MessagesTeams, g.Submissions
	s.Distribution = make([]Bucket, len(distribution))
	for i, d := range distribution {
		s.Distribution[i].Label = d.label
	}
	for _, m := range g.MinutesByUser {
		for i, d := range distribution {
			if m < d.below {
				s.Distribution[i].Count++
				break
			}
		}
	}
	if len(g.AttendanceCurve) > 0 {
		s.AttendanceCurve = analytics.FillMinutes(g.AttendanceCurve, g.AttendanceCurve[0].Minute, g.AttendanceCurve[len(g.AttendanceCurve)-1].Minute)
	}
	var claims, resolves []time.Duration
	for _, h := range g.HelpRequests {
		if h.Raised.IsZero() || h.Raised.Unix() <= 0 {
			continue // claimed or resolved rows of a flag whose raise was lost
		}
		s.Help.Requests++
		if !h.Claimed.IsZero() {
			s.Help.Claimed++
			claims = append(claims, max(0, h.Claimed.Sub(h.Raised)))
		}
		if !h.Resolved.IsZero() {
			s.Help.Resolved++
			resolves = append(resolves, max(0, h.Resolved.Sub(h.Raised)))
		}
	}
	analytics.SortDurations(claims)
	analytics.SortDurations(resolves)
	s.Help.ClaimMedianSec = int64(analytics.Percentile(claims, 50).Seconds())
	s.Help.ClaimP90Sec = int64(analytics.Percentile(claims, 90).Seconds())
	s.Help.ResolveMedianSec = int64(analytics.Percentile(resolves, 50).Seconds())
	s.Help.ResolveP90Sec = int64(analytics.Percentile(resolves, 90).Seconds())
	return s, nil
}

// registrations fills the registration and revenue figures.
func registrations(s *Summary, e events.Event, regs []events.Registration) {
	byTicket := map[string]int{}
	revenue := map[string]*CurrencyRevenue{}
	var counted []time.Time
	for _, r := range regs {
		switch {
		case r.Counts():
			s.Registrations++
			byTicket[r.TicketTypeID]++
			at := r.Confirmed
			if r.Status == events.Paid && !r.Paid.IsZero() {
				at = r.Paid
			}
			if at.IsZero() {
				at = r.Created
			}
			counted = append(counted, at)
		case r.Status == events.Pending:
			s.Awaiting++
		default:
			s.Cancelled++
		}
		if r.AmountMinor > 0 && (r.Status == events.Paid || r.Status == events.RefundDue) {
			cr := revenue[r.Currency]
			if cr == nil {
				cr = &CurrencyRevenue{Currency: r.Currency}
				revenue[r.Currency] = cr
			}
			cr.Gross += r.AmountMinor
			if r.Status == events.RefundDue {
				cr.Refunded += r.AmountMinor
			}
			cr.Net = cr.Gross - cr.Refunded
		}
	}
	for _, t := range e.Tickets {
		s.ByTicket = append(s.ByTicket, TicketCount{TicketID: t.ID, Name: t.Name, Count: byTicket[t.ID]})
	}
	for _, cr := range revenue {
		s.Revenue = append(s.Revenue, *cr)
	}
	sort.Slice(s.Revenue, func(i, j int) bool { return s.Revenue[i].Currency < s.Revenue[j].Currency })
	s.OverTime = cumulative(counted)
}

// cumulative turns instants into a cumulative count per hour (per day when
// they span more than three days), one point per bucket that changed.
func cumulative(ts []time.Time) []TimeCount {
	if len(ts) == 0 {
		return nil
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	step := time.Hour
	if ts[len(ts)-1].Sub(ts[0]) > 72*time.Hour {
		step = 24 * time.Hour
	}
	var out []TimeCount
	for i, t := range ts {
		b := t.UTC().Truncate(step)
		if n := len(out); n > 0 && out[n-1].At.Equal(b) {
			out[n-1].Count = i + 1
			continue
		}
		out = append(out, TimeCount{At: b, Count: i + 1})
	}
	return out
}

// Rows are the summary's figures as events_summary rows.
func (s Summary) Rows() []analytics.SummaryRow {
	rows := []analytics.SummaryRow{
		{Metric: "registrations", Value: float64(s.Registrations)},
		{Metric: "attendees", Value: float64(s.Attendees)},
		{Metric: "connected_minutes", Value: float64(s.ConnectedMinutes)},
		{Metric: "messages", Key: "main", Value: float64(s.MessagesMain)},
		{Metric: "messages", Key: "teams", Value: float64(s.MessagesTeams)},
		{Metric: "submissions", Value: float64(s.Submissions)},
		{Metric: "help_requests", Value: float64(s.Help.Requests)},
		{Metric: "help_claim_median_sec", Value: float64(s.Help.ClaimMedianSec)},
		{Metric: "help_resolve_median_sec", Value: float64(s.Help.ResolveMedianSec)},
	}
	for _, t := range s.ByTicket {
		rows = append(rows, analytics.SummaryRow{Metric: "registrations_by_ticket", Key: t.TicketID, Value: float64(t.Count)})
	}
	for _, p := range s.OverTime {
		rows = append(rows, analytics.SummaryRow{Metric: "registrations_over_time", Key: p.At.UTC().Format(time.RFC3339), Value: float64(p.Count)})
	}
	for _, r := range s.Revenue {
		rows = append(rows, analytics.SummaryRow{Metric: "revenue_net_minor", Key: r.Currency, Value: float64(r.Net)})
	}
	for i, b := range s.Distribution {
		rows = append(rows, analytics.SummaryRow{Metric: "connected_distribution", Key: strconv.Itoa(i) + " " + b.Label, Value: float64(b.Count)})
	}
	for _, m := range s.AttendanceCurve {
		rows = append(rows, analytics.SummaryRow{Metric: "attendance_minute", Key: m.Minute.UTC().Format(time.RFC3339), Value: float64(m.Count)})
	}
	return rows
}
