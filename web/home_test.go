package web_test

import (
	"regexp"
	"strings"
	"testing"
)

// The home page advertises only what is built: every feature that does not
// exist yet is inside an element marked "coming", nowhere else.
func TestHomeMarksUnbuiltFeaturesAsComing(t *testing.T) {
	e := startEdge(t)
	_, body := get(t, e.URL+"/")
	main := body[strings.Index(body, "<main>"):strings.Index(body, "</main>")]
	// The "coming" parts are leaf lists or whole cards; cut them out and
	// what is left must not mention an unbuilt feature.
	coming := regexp.MustCompile(`(?s)<li class="[^"]*\bcoming\b[^"]*">.*?</li>|<p class="coming">.*?</p>`)
	marked := strings.Join(coming.FindAllString(main, -1), "\n")
	rest := coming.ReplaceAllString(main, "")
	for _, f := range []string{"live stream", "chat", "teams", "analytics", "fees", "exports", "A/B tests"} {
		if strings.Contains(strings.ToLower(rest), strings.ToLower(f)) {
			t.Errorf("home page advertises %q outside a coming mark", f)
		}
		if !strings.Contains(strings.ToLower(marked), strings.ToLower(f)) {
			t.Errorf("home page does not list %q as coming", f)
		}
	}
}
