package eventpost

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"

	"jetfleet/analytics"
	"jetfleet/internal/events"
	"jetfleet/subjects"
)

// SummaryMailID is the mail id of an event's summary: the MAIL stream
// drops a second one within its duplicate window, and the ledger's Mailed
// mark stops any later one.
func SummaryMailID(eid string) string { return "events-summary:" + eid }

// FeeLine says what happened to the fee, for the mail and the page.
func FeeLine(f FeeRecord) string {
	amount := events.FormatMinor(f.AmountMinor, f.Currency)
	switch f.State {
	case FeePaid:
		return fmt.Sprintf("Platform fee charged: %s for %d registered participants.", amount, f.Participants)
	case FeeWaived:
		return fmt.Sprintf("No platform fee: %d registered participants are within the free allowance.", f.Participants)
	case FeeFlagged:
		return fmt.Sprintf("We could not charge the platform fee of %s for %d registered participants: %s Please open the event's analytics page to settle it.", amount, f.Participants, f.Reason)
	default:
		return fmt.Sprintf("Platform fee of %s for %d registered participants: being charged.", amount, f.Participants)
	}
}

// Revenue formats revenue per currency ("120.00 EUR, 30.00 USD"), or "none".
func Revenue(rs []CurrencyRevenue) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, events.FormatMinor(r.Net, r.Currency))
	}
	if len(parts) == 0 {
		return "none (free tickets)"
	}
	return strings.Join(parts, ", ")
}

var summaryHTML = template.Must(template.New("summary").Parse(`<!DOCTYPE html>
<html lang="en"><body style="font-family:sans-serif;max-width:36rem">
<h1>{{.Title}}: your event in figures</h1>
<p>{{.Fee}}</p>
<table cellpadding="4">
<tr><th align="left">Ticket revenue (net of refunds)</th><td>{{.Revenue}}</td></tr>
<tr><th align="left">Registered participants</th><td>{{.Registrations}}</td></tr>
<tr><th align="left">Attendees (1 minute or more)</th><td>{{.Attendees}}</td></tr>
<tr><th align="left">Connected hours</th><td>{{.Hours}}</td></tr>
<tr><th align="left">Chat messages</th><td>{{.Messages}}</td></tr>
<tr><th align="left">Submissions</th><td>{{.Submissions}}</td></tr>
</table>
<p><a href="{{.Link}}">See every figure and chart</a></p>
</body></html>`))

// SummaryMail is the mail to the organiser (to) after event sum: the fee
// and the value they got from the event.
func SummaryMail(to, baseURL string, sum Summary, fee FeeRecord) subjects.Mail {
	link := strings.TrimRight(baseURL, "/") + "/events/organise/" + sum.EventID + "/analytics"
	title := events.OneLine(sum.Title)
	v := map[string]any{
		"Title": title, "Fee": FeeLine(fee), "Revenue": Revenue(sum.Revenue),
		"Registrations": analytics.GroupDigits(int64(sum.Registrations)), "Attendees": analytics.GroupDigits(int64(sum.Attendees)),
		"Hours": fmt.Sprintf("%.1f", sum.ConnectedHours()), "Messages": analytics.GroupDigits(int64(sum.Messages())),
		"Submissions": analytics.GroupDigits(int64(sum.Submissions)), "Link": link,
	}
	var html bytes.Buffer
	_ = summaryHTML.Execute(&html, v)
	text := fmt.Sprintf(`%s: your event in figures

%s

Ticket revenue (net of refunds): %s
Registered participants: %s
Attendees (1 minute or more): %s
Connected hours: %s
Chat messages: %s
Submissions: %s

See every figure and chart: %s
`, title, v["Fee"], v["Revenue"], v["Registrations"], v["Attendees"], v["Hours"], v["Messages"], v["Submissions"], link)
	return subjects.Mail{ID: SummaryMailID(sum.EventID), To: to, Subject: "Your event " + title + " in figures", Text: text, HTML: html.String()}
}
