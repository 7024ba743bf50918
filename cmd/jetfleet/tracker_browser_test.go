package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jetfleet/internal/testenv"
	"jetfleet/internal/youtube/youtubetest"
)

// The Tracker against the demo world of `jetfleet dev --demo`: track a
// channel by handle and one of its videos, see the sample's views and likes,
// and check that nothing of the Tracker's pages is wider than a 1280 or a
// 390 px window.
func TestTrackerPagesInHeadlessChromium(t *testing.T) {
	dev := startDev(t, "--demo")
	base := dev.Site
	b := startBrowser(t, dev, 1280, 1000)
	b.run("request sign-in", chromedp.Navigate(base+"/signin"), chromedp.SendKeys(`#email`, "tracker@example.com", chromedp.ByQuery),
		chromedp.Click(`main form[action="/signin"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h1[text()="Check your email"]`))
	b.followMagicLink("tracker@example.com", `header form[action="/signout"] button`)

	demo := youtubetest.DemoChannels()[0]
	b.run("track a channel by handle", chromedp.Navigate(base+"/tracker"),
		chromedp.SendKeys(`form.track input[name=ref]`, demo.Handle, chromedp.ByQuery),
		chromedp.Click(`form.track button`, chromedp.ByQuery),
		chromedp.WaitVisible(`//h1[text()="`+demo.Title+`"]`))
	// The channel check (every 20 s in the demo) finds its uploads; the
	// hourly tick (every 10 s) samples them.
	var video string
	testenv.Eventually(t, 90*time.Second, "a video of the channel sampled", func() bool {
		var href string
		b.run("channel page", chromedp.Navigate(base+"/tracker/channels/"+demo.ID),
			chromedp.Evaluate(`(() => { for (const tr of document.querySelectorAll("table.list tbody tr")) {
				if (!tr.children[3].textContent.includes("—")) return tr.querySelector("a").getAttribute("href"); } return ""; })()`, &href))
		video = href
		return href != ""
	})
	var lead string
	b.run("video page", chromedp.Navigate(base+video), chromedp.Text(`p.lead`, &lead, chromedp.ByQuery))
	if !strings.Contains(lead, "views") || !strings.Contains(lead, "likes") {
		t.Fatalf("video page lead %q lacks views and likes", lead)
	}

	for _, width := range []int64{1280, 390} {
		// /enricher as a user with no Enricher key: the page saying how
		// to get one.
		for _, page := range []string{"/tracker", "/tracker/channels/" + demo.ID, video, "/tracker/outliers", "/tracker/digest", "/enricher"} {
			// The Tracker's own content; the site header is the layout's.
			var wide []string
			b.run(fmt.Sprintf("%s at %d px", page, width), chromedp.EmulateViewport(width, 900), chromedp.Navigate(base+page),
				chromedp.Evaluate(wideInMain, &wide))
			if len(wide) > 0 {
				t.Errorf("%s at %d px: wider than the window: %v", page, width, wide)
			}
		}
	}
}

// wideInMain lists the elements of <main> that reach past the window's
// right edge, leaving out those inside a box that scrolls (or clips) them.
const wideInMain = `(() => {
	const scrolled = e => {
		for (let p = e.parentElement; p && p.tagName !== "MAIN"; p = p.parentElement) {
			if (["auto", "scroll", "hidden"].includes(getComputedStyle(p).overflowX)) return true;
		}
		return false;
	};
	return Array.from(document.querySelectorAll("main *"))
		.filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !scrolled(e))
		.map(e => e.tagName.toLowerCase() + (e.className ? "." + e.className : "") + " to " + Math.round(e.getBoundingClientRect().right) + " px");
})()`
