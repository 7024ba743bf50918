package eventexports

import (
	"strings"
	"testing"

	"jetfleet/internal/crm"
)

// A contact sent with a stand-in last name is said in the run's summary.
func TestRunLineSaysWhenNamesWereFilledIn(t *testing.T) {
	r := crm.Run{Status: crm.RunDone, Total: 3, Upserted: 3, NamesFilled: 1}
	if got := runLine(r); !strings.Contains(got, "1 without a name sent with their email's local part as last name") {
		t.Fatalf("runLine = %q", got)
	}
	r.NamesFilled = 0
	if got := runLine(r); strings.Contains(got, "without a name") {
		t.Fatalf("runLine = %q, says names were filled in when none were", got)
	}
}
