package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The help desk in a real browser against `jetfleet dev`: the organiser,
// registered for their own event, splits and publishes the teams; in one
// tab the admin page is open, in another the team page asks for help; the
// flag appears on the admin page without a reload (the admin socket and
// desk.js), the organiser claims it, joins the team's chat and writes in
// it, the team sees it, and the team's submission shows on the admin page.
func TestHelpDeskInHeadlessChromium(t *testing.T) {
	dev := startDev(t)
	base := dev.Site
	b := startBrowser(t, dev, 1280, 1400)
	const email = "desk@example.com"
	b.run("request sign-in", chromedp.Navigate(base+"/signin"), chromedp.SendKeys(`#email`, email, chromedp.ByQuery),
		chromedp.Click(`main form[action="/signin"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h1[text()="Check your email"]`))
	b.followMagicLink(email, `header form[action="/signout"] button`)

	day := time.Now().AddDate(0, 0, 5).Format("2006-01-02")
	var manage string
	b.run("create an event", chromedp.Navigate(base+"/events/organise/new"),
		chromedp.SetValue(`#title`, "Desk Hack Day", chromedp.ByQuery),
		chromedp.SetValue(`#business_type`, "technology", chromedp.ByQuery),
		chromedp.SetValue(`#start`, day+"T18:00", chromedp.ByQuery), chromedp.SetValue(`#end`, day+"T20:00", chromedp.ByQuery),
		chromedp.SetValue(`#time_zone`, "Europe/Berlin", chromedp.ByQuery), chromedp.SetValue(`#capacity`, "40", chromedp.ByQuery),
		chromedp.Click(`#event-form button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`#ticket-form`, chromedp.ByQuery), chromedp.Location(&manage))
	manage = strings.SplitN(manage, "?", 2)[0]
	eventID := manage[strings.LastIndex(manage, "/")+1:]
	b.run("add a ticket", chromedp.SetValue(`#ticket_name`, "Community", chromedp.ByQuery), chromedp.SetValue(`#price`, "0", chromedp.ByQuery),
		chromedp.SetValue(`#currency`, "eur", chromedp.ByQuery), chromedp.SetValue(`#quantity`, "20", chromedp.ByQuery),
		chromedp.Click(`#add-ticket`, chromedp.ByQuery), chromedp.WaitVisible(`//section//ul/li[starts-with(normalize-space(.), "Community ·")]`))
	b.run("publish", chromedp.Click(`#publish`, chromedp.ByQuery), chromedp.WaitVisible(`//span[@id="event-status" and text()="live"]`))
	b.run("register (signed in: one step)", chromedp.Navigate(base+"/events/e/"+eventID),
		chromedp.Click(`input[data-name="Community"]`, chromedp.ByQuery), chromedp.SetValue(`#name`, "Dee Sk", chromedp.ByQuery),
		chromedp.Click(`input[name=terms]`, chromedp.ByQuery), chromedp.Click(`input[name=data_sharing]`, chromedp.ByQuery),
		chromedp.Click(`#register button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`#reg-status`, chromedp.ByQuery))

	admin := base + "/events/" + eventID + "/live/admin"
	b.run("split into teams and publish", chromedp.Navigate(admin),
		chromedp.SetValue(`#split-n`, "1", chromedp.ByQuery), chromedp.SetValue(`select[name=by]`, "count", chromedp.ByQuery),
		chromedp.Click(`#split-form button`, chromedp.ByQuery), chromedp.WaitVisible(`#publish-form`, chromedp.ByQuery),
		chromedp.Click(`#publish-form button`, chromedp.ByQuery), chromedp.WaitVisible(`#teams-state`, chromedp.ByQuery))
	b.run("the help queue is live and empty", chromedp.WaitVisible(`#help-empty`, chromedp.ByQuery),
		chromedp.WaitVisible(`//span[@id="help-live" and text()="live"]`))

	// The team page in a second tab of the same browser (same session).
	tab, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	// The first Run opens the tab for tab's whole life (a run under a
	// timeout would close it with the timeout).
	if err := chromedp.Run(tab); err != nil {
		t.Fatalf("open a second tab: %v", err)
	}
	team := &browser{t: t, ctx: tab, base: base, used: b.used}
	team.run("ask for help", chromedp.Navigate(base+"/events/"+eventID+"/live/team"),
		chromedp.WaitVisible(`#team-members`, chromedp.ByQuery), chromedp.Click(`#ask-help button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#desk-notice`, chromedp.ByQuery))

	b.run("the flag appears on the open admin page", chromedp.WaitVisible(`#help-queue li[data-state="open"]`, chromedp.ByQuery))
	if s := b.text(`#help-queue li[data-state="open"] strong`); s != "Team 1" {
		t.Errorf("flag names %q, want Team 1", s)
	}
	b.run("the teams table marks the team asking", chromedp.WaitVisible(`#team-table td[data-help="open"]`, chromedp.ByQuery))
	b.run("claim it", chromedp.Click(`#help-queue li[data-state="open"] form[action$="/claim"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#help-queue li[data-state="claimed"]`, chromedp.ByQuery))
	if s := b.text(`#help-queue li[data-state="claimed"]`); !strings.Contains(s, "claimed by you") {
		t.Errorf("claimed flag reads %q", s)
	}
	team.run("the team page shows the claim without a reload", chromedp.WaitVisible(`#help-state[data-state="claimed"]`, chromedp.ByQuery))
	b.run("join the team's chat", chromedp.Click(`#help-queue li a`, chromedp.ByQuery), chromedp.WaitVisible(`#team-chat .chat-form`, chromedp.ByQuery),
		chromedp.WaitVisible(`//p[contains(@class,"chat-status") and not(contains(., "Connecting"))]`),
		chromedp.SendKeys(`#team-chat .chat-form textarea`, "On my way", chromedp.ByQuery), chromedp.Click(`#team-chat .chat-form button`, chromedp.ByQuery),
		chromedp.WaitVisible(`//ol[contains(@class,"chat-log")]//p[text()="On my way"]`))
	team.run("the team sees the host in its chat", chromedp.Navigate(base+"/events/"+eventID+"/live/team"),
		chromedp.WaitVisible(`//section[@id="team-chat"]//p[text()="On my way"]`))

	b.run("back to the admin page", chromedp.Navigate(admin), chromedp.WaitVisible(`#team-table`, chromedp.ByQuery))
	team.run("submit the project", chromedp.Navigate(base+"/events/"+eventID+"/live/team"),
		chromedp.SetValue(`#title`, "Helpdesk Bot", chromedp.ByQuery), chromedp.SetValue(`#link`, "https://example.com/bot", chromedp.ByQuery),
		chromedp.Click(`#submit-form button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`#team-submission article.submission`, chromedp.ByQuery))
	// The teams table follows without a reload (refreshed every 10 s).
	b.run("the open admin page lists the submission", chromedp.WaitVisible(`//table[@id="team-table"]//td[contains(., "Helpdesk Bot")]`))
}
