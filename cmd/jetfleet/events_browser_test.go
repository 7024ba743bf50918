package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jetfleet/internal/testenv"
)

// chromiumPath finds Debian's chromium (installed by `make deps-test`).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium is required for the browser test and was not found on PATH: run `make deps-test` (apt-get install chromium)")
	return ""
}

// browser drives one headless Chromium against base.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	used map[string]bool // magic links already followed
}

func (b *browser) run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var loc, body string
		_ = chromedp.Run(b.ctx, chromedp.Location(&loc), chromedp.Text("main", &body, chromedp.ByQuery))
		b.t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// followMagicLink waits for a new magic link to email in the dev outbox,
// opens it, confirms the sign-in and waits for landing (a selector of the
// page the link leads to).
func (b *browser) followMagicLink(email, landing string) {
	b.t.Helper()
	var link string
	testenv.Eventually(b.t, 15*time.Second, "magic link mail to "+email+" in the outbox", func() bool {
		var links []string
		b.run("read outbox", chromedp.Navigate(b.base+"/outbox"), chromedp.Evaluate(fmt.Sprintf(`
			Array.from(document.querySelectorAll("article.mail"))
				.filter(a => a.querySelector("header").textContent.includes(%q))
				.flatMap(a => Array.from(a.querySelectorAll("a")).map(x => x.href))
				.filter(h => h.includes("/signin/verify"))`, "to "+email), &links))
		for _, l := range links {
			if !b.used[l] {
				link = l
				return true
			}
		}
		return false
	})
	b.used[link] = true
	b.run("open magic link", chromedp.Navigate(link), chromedp.Click(`main form[action="/signin/verify"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(landing, chromedp.ByQuery))
}

// The acceptance flow of the Events product, in a real browser against
// `jetfleet dev` (edge, mail role with the outbox, local Stripe stand-in):
// an organiser creates an event with a free and a paid ticket, connects
// Stripe, publishes; a participant finds it by business type and date,
// registers for the free ticket through the outbox magic link, and buys the
// paid one through Checkout.
func TestEventsAcceptanceFlowInHeadlessChromium(t *testing.T) {
	dev := startDev(t)
	base := dev.Site
	b := startBrowser(t, dev, 1200, 1600)

	// --- organiser ---
	b.run("request sign-in", chromedp.Navigate(base+"/signin"), chromedp.SendKeys(`#email`, "org@example.com", chromedp.ByQuery),
		chromedp.Click(`main form[action="/signin"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h1[text()="Check your email"]`))
	b.followMagicLink("org@example.com", `header form[action="/signout"] button`)

	day := time.Now().AddDate(0, 0, 12)
	date := day.Format("2006-01-02")
	// A draft the server refuses (it ends before it starts): the message is
	// on the form, with what was typed kept, and nothing is saved.
	var loc string
	b.run("submit an invalid draft", chromedp.Navigate(base+"/events/organise/new"),
		chromedp.SetValue(`#title`, "Browser Hack Night", chromedp.ByQuery),
		chromedp.SetValue(`#description`, "Two hours of hacking, online.", chromedp.ByQuery),
		chromedp.SetValue(`#business_type`, "technology", chromedp.ByQuery),
		chromedp.SetValue(`#start`, date+"T18:00", chromedp.ByQuery),
		chromedp.SetValue(`#end`, date+"T17:00", chromedp.ByQuery),
		chromedp.SetValue(`#time_zone`, "Europe/Berlin", chromedp.ByQuery),
		chromedp.SetValue(`#capacity`, "40", chromedp.ByQuery),
		chromedp.Click(`#event-form button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`p[data-field="end"]`, chromedp.ByQuery))
	if msg := b.text(`p[data-field="end"]`); !strings.Contains(msg, "must end after it starts") {
		t.Errorf("end message %q", msg)
	}
	b.run("correct and save the draft",
		chromedp.SetValue(`#end`, date+"T20:00", chromedp.ByQuery),
		chromedp.Click(`#event-form button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#ticket-form`, chromedp.ByQuery), chromedp.Location(&loc))
	manage := strings.SplitN(loc, "?", 2)[0]
	for _, tk := range []struct{ name, price string }{{"Community", "0"}, {"Supporter", "25.00"}} {
		b.run("add ticket "+tk.name,
			chromedp.SetValue(`#ticket_name`, tk.name, chromedp.ByQuery), chromedp.SetValue(`#price`, tk.price, chromedp.ByQuery),
			chromedp.SetValue(`#currency`, "eur", chromedp.ByQuery), chromedp.SetValue(`#quantity`, "20", chromedp.ByQuery),
			chromedp.Click(`#add-ticket`, chromedp.ByQuery),
			chromedp.WaitVisible(`//section//ul/li[starts-with(normalize-space(.), "`+tk.name+` ·")]`))
	}
	b.run("publish before Stripe", chromedp.Click(`#publish`, chromedp.ByQuery), chromedp.WaitVisible(`#problem`, chromedp.ByQuery))
	if p := b.text(`#problem`); !strings.Contains(p, "connect a Stripe account") {
		t.Fatalf("publishing without Stripe says %q", p)
	}
	// Stripe sends the organiser back to the event they were publishing.
	b.run("connect Stripe", chromedp.Click(`#connect-stripe`, chromedp.ByQuery), chromedp.WaitVisible(`#stripe-submit`, chromedp.ByQuery),
		chromedp.Click(`#stripe-submit`, chromedp.ByQuery), chromedp.WaitVisible(`#notice`, chromedp.ByQuery), chromedp.Location(&loc))
	if s := b.text(`#notice`); !strings.Contains(s, "Stripe is connected") || !strings.HasPrefix(loc, manage+"?") {
		t.Fatalf("after onboarding at %s: %q", loc, s)
	}
	b.run("publish", chromedp.Click(`#publish`, chromedp.ByQuery), chromedp.WaitVisible(`//span[@id="event-status" and text()="live"]`))
	if s := b.text(`#event-status`); s != "live" {
		t.Fatalf("event status %q after publishing", s)
	}
	b.run("sign out", chromedp.Click(`header form[action="/signout"] button`, chromedp.ByQuery), chromedp.WaitVisible(`header .account a[href="/signin"]`, chromedp.ByQuery))

	// --- participant ---
	b.run("find by type and date", chromedp.Navigate(base+"/events"),
		chromedp.SetValue(`#type`, "technology", chromedp.ByQuery), chromedp.SetValue(`#from`, date, chromedp.ByQuery), chromedp.SetValue(`#to`, date, chromedp.ByQuery),
		chromedp.Click(`#filter button`, chromedp.ByQuery),
		// The server-rendered selection shows that the filtered page loaded.
		chromedp.WaitReady(`//select[@id="type"]/option[@value="technology" and @selected]`),
		chromedp.WaitVisible(`//ul[@id="event-list"]//a[text()="Browser Hack Night"]`))
	b.run("another type hides it", chromedp.Navigate(base+"/events?type=health&from="+date+"&to="+date), chromedp.WaitVisible(`#no-events`, chromedp.ByQuery))
	b.run("open the event", chromedp.Navigate(base+"/events?type=technology&from="+date), chromedp.Click(`//a[text()="Browser Hack Night"]`), chromedp.WaitVisible(`#register`, chromedp.ByQuery))
	event := ""
	b.run("event url", chromedp.Location(&event))

	register := func(ticket, landing string) {
		b.run("register for "+ticket, chromedp.Navigate(event),
			chromedp.Click(`input[data-name="`+ticket+`"]`, chromedp.ByQuery),
			chromedp.SetValue(`#name`, "Pat Participant", chromedp.ByQuery), chromedp.SetValue(`#email`, "pat@example.com", chromedp.ByQuery),
			chromedp.Click(`input[name=terms]`, chromedp.ByQuery), chromedp.Click(`input[name=data_sharing]`, chromedp.ByQuery),
			chromedp.Click(`#register button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(landing))
	}
	// Signed out: the magic link proves the address, then a click confirms.
	register("Community", `//h1[text()="Check your email"]`)
	b.followMagicLink("pat@example.com", `#confirm`)
	b.run("confirm free ticket", chromedp.Click(`#confirm`, chromedp.ByQuery), chromedp.WaitVisible(`#notice`, chromedp.ByQuery))
	if s := b.text(`#reg-status`); s != "confirmed" {
		t.Fatalf("free registration status %q", s)
	}

	// Signed in now (by that link): one step, straight on to Checkout.
	register("Supporter", `#stripe-pay`)
	if a := b.text(`#amount`); a != "25.00 EUR" {
		t.Errorf("checkout amount %q", a)
	}
	b.run("pay", chromedp.Click(`#stripe-pay`, chromedp.ByQuery), chromedp.WaitVisible(`#reg-status`, chromedp.ByQuery))
	if s := b.text(`#reg-status`); s != "paid" {
		t.Fatalf("paid registration status %q", s)
	}
	var mine string
	b.run("my events", chromedp.Navigate(base+"/events/mine"), chromedp.Text(`#upcoming`, &mine, chromedp.ByQuery))
	if !strings.Contains(mine, "confirmed") || !strings.Contains(mine, "paid") {
		t.Errorf("my events shows %q", mine)
	}
	testenv.Eventually(t, 15*time.Second, "payment confirmation mail in the outbox", func() bool {
		var body string
		b.run("outbox", chromedp.Navigate(base+"/outbox"), chromedp.Text("main", &body, chromedp.ByQuery))
		return strings.Contains(body, "Payment received: your ticket is confirmed")
	})
	if shot := os.Getenv("EVENTS_SCREENSHOT"); shot != "" {
		var png []byte
		b.run("screenshot", chromedp.Navigate(base+"/events/mine"), chromedp.FullScreenshot(&png, 100))
		os.WriteFile(shot, png, 0o644)
	}
}
