package eventexports

import (
	"fmt"
	"time"

	"jetfleet/internal/crm"
	"jetfleet/internal/events"
)

type pageData struct {
	Event        events.Event
	Contacts     int
	Runs         map[string]crm.Run
	Connected    map[string]crm.Connection
	Integrations bool
	IsOrganiser  bool
	Notice       string
	Problem      string
}

// Running reports whether a run is still going (the page then refreshes).
func (d pageData) Running() bool {
	for _, r := range d.Runs {
		if r.Status == crm.RunQueued || r.Status == crm.RunRunning {
			return true
		}
	}
	return false
}

type integrationsData struct {
	Enabled              bool
	SalesforceConfigured bool
	ExternalIDField      string
	Connected            map[string]crm.Connection
	Notice               string
	Problems             map[string]string
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

func runLine(r crm.Run) string {
	line := runStatus(r)
	if r.NamesFilled > 0 {
		// Never silent: these went with a stand-in last name.
		line += fmt.Sprintf("; %d without a name sent with their email's local part as last name (the CRM requires one)", r.NamesFilled)
	}
	return line
}

func runStatus(r crm.Run) string {
	switch r.Status {
	case crm.RunQueued:
		return "queued " + stamp(r.Queued)
	case crm.RunRunning:
		return fmt.Sprintf("running: %d of %d contacts sent in %d batches", r.Done, r.Total, r.Batches)
	case crm.RunDone:
		return fmt.Sprintf("done %s: %d contacts, %d upserted (%d new), %d refused", stamp(r.Finished), r.Total, r.Upserted, r.Created, len(r.Failures)+r.FailuresOmitted)
	case crm.RunFailed:
		return fmt.Sprintf("failed %s after %d of %d contacts", stamp(r.Finished), r.Done, r.Total)
	}
	return string(r.Status)
}

func itoa(n int) string { return fmt.Sprint(n) }
