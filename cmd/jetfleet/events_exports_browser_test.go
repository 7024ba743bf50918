package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"jetfleet/internal/crm/hubspot/hubspottest"
)

// A new organiser on `jetfleet dev` connects the HubSpot stand-in (token)
// and the Salesforce one (OAuth), exports their event's participant into
// both and sees the contact on the HubSpot stand-in's page, downloads the
// CSV and has its link mailed.
func TestOrganiserExportsParticipantsIntoTheCRMStandInsAndAsCSV(t *testing.T) {
	dev := startDev(t)
	base := dev.Site
	b := startBrowser(t, dev, 1280, 1000)
	const email = "exporter@example.com"
	b.run("request sign-in", chromedp.Navigate(base+"/signin"), chromedp.SendKeys(`#email`, email, chromedp.ByQuery),
		chromedp.Click(`main form[action="/signin"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h1[text()="Check your email"]`))
	b.followMagicLink(email, `header form[action="/signout"] button`)

	day := time.Now().AddDate(0, 0, 9).Format("2006-01-02")
	var manage string
	b.run("create an event", chromedp.Navigate(base+"/events/organise/new"),
		chromedp.SetValue(`#title`, "Export night", chromedp.ByQuery), chromedp.SetValue(`#business_type`, "technology", chromedp.ByQuery),
		chromedp.SetValue(`#start`, day+"T18:00", chromedp.ByQuery), chromedp.SetValue(`#end`, day+"T20:00", chromedp.ByQuery),
		chromedp.SetValue(`#time_zone`, "Europe/Berlin", chromedp.ByQuery), chromedp.SetValue(`#capacity`, "40", chromedp.ByQuery),
		chromedp.Click(`#event-form button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`#ticket-form`, chromedp.ByQuery), chromedp.Location(&manage))
	manage = strings.SplitN(manage, "?", 2)[0]
	eventID := manage[strings.LastIndex(manage, "/")+1:]
	b.run("add a ticket and publish", chromedp.SetValue(`#ticket_name`, "Community", chromedp.ByQuery), chromedp.SetValue(`#price`, "0", chromedp.ByQuery),
		chromedp.SetValue(`#quantity`, "20", chromedp.ByQuery), chromedp.Click(`#add-ticket`, chromedp.ByQuery),
		chromedp.WaitVisible(`//section//ul/li[starts-with(normalize-space(.), "Community ·")]`),
		chromedp.Click(`#publish`, chromedp.ByQuery), chromedp.WaitVisible(`//span[@id="event-status" and text()="live"]`))
	b.run("register (signed in: one step)", chromedp.Navigate(base+"/events/e/"+eventID),
		chromedp.Click(`input[data-name="Community"]`, chromedp.ByQuery), chromedp.SetValue(`#name`, "=Ada Lovelace", chromedp.ByQuery),
		chromedp.Click(`input[name=terms]`, chromedp.ByQuery), chromedp.Click(`input[name=data_sharing]`, chromedp.ByQuery),
		chromedp.Click(`#register button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`#reg-status`, chromedp.ByQuery))

	b.run("refuse a malformed token, then connect HubSpot", chromedp.Navigate(base+"/events/organise"),
		chromedp.Click(`#integrations-link`, chromedp.ByQuery), chromedp.WaitVisible(`#hubspot_token`, chromedp.ByQuery),
		chromedp.SetValue(`#hubspot_token`, "not a token", chromedp.ByQuery), chromedp.Click(`#save-hubspot`, chromedp.ByQuery),
		chromedp.WaitVisible(`p[data-field="hubspot_token"]`, chromedp.ByQuery),
		chromedp.SetValue(`#hubspot_token`, hubspottest.DefaultToken, chromedp.ByQuery), chromedp.Click(`#save-hubspot`, chromedp.ByQuery),
		chromedp.WaitVisible(`#disconnect-hubspot`, chromedp.ByQuery))
	var html string
	b.run("the token is never shown back", chromedp.OuterHTML(`main`, &html, chromedp.ByQuery))
	if strings.Contains(html, hubspottest.DefaultToken) {
		t.Fatal("the integrations page shows the stored token")
	}

	b.run("export to HubSpot", chromedp.Navigate(manage), chromedp.Click(`#exports-link`, chromedp.ByQuery),
		chromedp.WaitVisible(`#export-hubspot`, chromedp.ByQuery), chromedp.Click(`#export-hubspot`, chromedp.ByQuery),
		// The page refreshes itself until the run is done.
		chromedp.WaitVisible(`#run-hubspot[data-status="done"]`, chromedp.ByQuery))
	if got := b.text(`#run-hubspot`); !strings.Contains(got, "1 upserted (1 new)") {
		t.Fatalf("HubSpot run shows %q", got)
	}
	standIn := regexp.MustCompile(`CRMs\s+HubSpot (\S+)`).FindStringSubmatch(dev.Out.String())
	if standIn == nil {
		t.Fatalf("dev does not print the HubSpot stand-in:\n%s", dev.Out.String())
	}
	resp, err := http.Get(standIn[1] + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), email) || !strings.Contains(string(page), "Lovelace") {
		t.Fatalf("the HubSpot stand-in does not list the participant:\n%s", page)
	}

	// Salesforce: the OAuth web-server flow through the stand-in's consent
	// page, then an export.
	b.run("connect Salesforce", chromedp.Navigate(base+"/events/integrations"), chromedp.Click(`#connect-salesforce`, chromedp.ByQuery),
		chromedp.WaitVisible(`#allow`, chromedp.ByQuery), chromedp.Click(`#allow`, chromedp.ByQuery),
		chromedp.WaitVisible(`#disconnect-salesforce`, chromedp.ByQuery))
	b.run("export to Salesforce", chromedp.Navigate(manage+"/exports"), chromedp.Click(`#export-salesforce`, chromedp.ByQuery),
		chromedp.WaitVisible(`#run-salesforce[data-status="done"]`, chromedp.ByQuery))
	if got := b.text(`#run-salesforce`); !strings.Contains(got, "1 upserted (1 new)") {
		t.Fatalf("Salesforce run shows %q", got)
	}

	var csv string
	b.run("download the CSV", chromedp.Evaluate(`fetch(document.getElementById("download-csv").href).then(r => r.text())`, &csv,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if !strings.HasPrefix(csv, "name,email,ticket,status,registered_at,consent_version\n'=Ada Lovelace,"+email+",Community,confirmed,") {
		t.Fatalf("CSV:\n%s", csv)
	}
	b.run("mail the CSV link", chromedp.Click(`#mail-csv`, chromedp.ByQuery), chromedp.WaitVisible(`#run-csv[data-status="done"]`, chromedp.ByQuery))

	// Not signed in: no CSV.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(manage + "/exports/participants.csv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("the CSV is served without signing in")
	}
}
