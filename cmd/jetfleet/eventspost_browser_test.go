package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jetfleet/internal/testenv"
)

// As a newcomer on `make run`: the demo's past event has its post-event
// schedule fire a minute after start-up; its organiser then finds the
// final figures with charts on the analytics page (fitting a laptop and a
// phone), the fee charged at the Stripe stand-in, and the summary mail in
// the outbox. LAYOUT_SCREENSHOTS=dir keeps PNGs of the page.
func TestDemoPastEventShowsItsSummaryFeeAndMail(t *testing.T) {
	dev := startDev(t, "--demo")
	base := dev.Site
	b := startBrowser(t, dev, 1280, 900)
	b.run("request sign-in", chromedp.Navigate(base+"/signin"), chromedp.SendKeys(`#email`, demoOrganiser, chromedp.ByQuery),
		chromedp.Click(`main form[action="/signin"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h1[text()="Check your email"]`))
	b.followMagicLink(demoOrganiser, `header form[action="/signout"] button`)
	var manage string
	testenv.Eventually(t, 30*time.Second, "the demo's past event is on the organiser's dashboard", func() bool {
		b.run("dashboard", chromedp.Navigate(base+"/events/organise"), chromedp.Evaluate(`(Array.from(document.querySelectorAll("main a")).find(a => a.textContent.includes("yesterday's hackathon"))||{}).pathname || ""`, &manage))
		return manage != ""
	})
	b.run("event page", chromedp.Navigate(base+manage), chromedp.Click(`#analytics-link`, chromedp.ByQuery), chromedp.WaitVisible(`#figures`, chromedp.ByQuery))
	page := manage + "/analytics"
	var state string
	testenv.EventuallyState(t, 150*time.Second, "the post-event schedule fires and the figures are final", func() (bool, any) {
		b.run("analytics", chromedp.Navigate(base+page), chromedp.Text(`#figures-state`, &state, chromedp.ByQuery))
		var warnings []string
		for _, l := range strings.Split(dev.Out.String(), "\n") {
			if strings.Contains(l, "demo") && strings.Contains(l, "level=WARN") {
				warnings = append(warnings, l)
			}
		}
		return strings.HasPrefix(state, "Final figures"), fmt.Sprintf("%s %v", state, warnings)
	})
	testenv.EventuallyState(t, 30*time.Second, "the fee is charged", func() (bool, any) {
		b.run("analytics", chromedp.Navigate(base+page), chromedp.Text(`#fee-state`, &state, chromedp.ByQuery))
		return strings.Contains(state, "Platform fee charged: 5.00 EUR for 60 registered participants"), state
	})
	if got := b.text(`#fig-registrations`) + " " + b.text(`#fig-attendees`); got != "60 48" {
		t.Fatalf("registrations and attendees %q, want the demo's 60 and 48", got)
	}
	var charts int
	b.run("charts", chromedp.Evaluate(`document.querySelectorAll("main svg.chart").length`, &charts))
	if charts != 4 {
		t.Fatalf("%d charts on the analytics page, want 4 (registrations over time, by ticket, attendance, distribution)", charts)
	}
	for _, width := range layoutWidths {
		var w int
		b.run(fmt.Sprintf("at %d px", width), chromedp.EmulateViewport(int64(width), 900), chromedp.Navigate(base+page),
			chromedp.WaitVisible(`#figures`, chromedp.ByQuery), chromedp.Evaluate(`document.documentElement.scrollWidth`, &w))
		if w > width {
			t.Errorf("the analytics page is %d px wide at %d px", w, width)
		}
		if dir := os.Getenv("LAYOUT_SCREENSHOTS"); dir != "" {
			var png []byte
			b.run("screenshot", chromedp.FullScreenshot(&png, 100))
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d_events_analytics.png", width)), png, 0o644)
		}
	}
	var mails int
	testenv.Eventually(t, 20*time.Second, "the summary mail is in the outbox", func() bool {
		b.run("outbox", chromedp.Navigate(base+"/outbox"), chromedp.Evaluate(`Array.from(document.querySelectorAll("article.mail")).filter(a => a.textContent.includes("Your event Demo: yesterday's hackathon in figures")).length`, &mails))
		return mails > 0
	})
	if mails != 1 {
		t.Fatalf("%d summary mails, want 1", mails)
	}
}
