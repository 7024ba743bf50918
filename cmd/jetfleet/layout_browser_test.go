package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jetfleet/internal/testenv"
	"jetfleet/internal/youtube/youtubetest"
)

// layoutWidths are the viewports every page must fit: a laptop and a phone.
var layoutWidths = []int{1280, 390}

// Every page of the site fits the viewport at 1280 and 390 px with real
// data on it; the header wraps on a phone and links to "Your data"; every
// page takes its styles from the one stylesheet, so tables look the same
// on every product. LAYOUT_SCREENSHOTS=dir keeps a PNG of each page.
func TestEveryPageFitsLaptopAndPhoneWidths(t *testing.T) {
	dev := startDev(t, "--demo")
	base := dev.Site
	b := startBrowser(t, dev, 1280, 900)
	const email = "layout@example.com"
	b.run("request sign-in", chromedp.Navigate(base+"/signin"), chromedp.SendKeys(`#email`, email, chromedp.ByQuery),
		chromedp.Click(`main form[action="/signin"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h1[text()="Check your email"]`))
	b.followMagicLink(email, `header form[action="/signout"] button`)

	// Enough data on every product's pages to fill them.
	var videoPage, channelPage string
	b.run("track a demo channel", chromedp.Navigate(base+"/tracker"),
		chromedp.SetValue(`form.track input[name=ref]`, "@rocketlab", chromedp.ByQuery), chromedp.Click(`form.track button`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.note`, chromedp.ByQuery), chromedp.Location(&channelPage))
	channelPage = strings.SplitN(channelPage, "?", 2)[0]
	testenv.Eventually(t, 90*time.Second, "the channel's videos are tracked and sampled", func() bool {
		b.run("channel page", chromedp.Navigate(channelPage), chromedp.Evaluate(`(document.querySelector('main a[href^="/tracker/videos/"]')||{}).pathname || ""`, &videoPage))
		return videoPage != ""
	})

	day := time.Now().AddDate(0, 0, 9).Format("2006-01-02")
	var manage string
	b.run("create an event", chromedp.Navigate(base+"/events/organise/new"),
		chromedp.SetValue(`#title`, "A rather long event title to see how it wraps on a small phone screen", chromedp.ByQuery),
		chromedp.SetValue(`#description`, "Two hours of hacking, online.\nBring a project.", chromedp.ByQuery),
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
	var registration string
	b.run("register (signed in: one step)", chromedp.Navigate(base+"/events/e/"+eventID),
		chromedp.Click(`input[data-name="Community"]`, chromedp.ByQuery), chromedp.SetValue(`#name`, "Lay Out", chromedp.ByQuery),
		chromedp.Click(`input[name=terms]`, chromedp.ByQuery), chromedp.Click(`input[name=data_sharing]`, chromedp.ByQuery),
		chromedp.Click(`#register button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`#reg-status`, chromedp.ByQuery), chromedp.Location(&registration))

	// The live event's desk: split the participant into a team and
	// publish, so the admin and team pages have a team to show.
	live := "/events/" + eventID + "/live"
	b.run("split and publish teams", chromedp.Navigate(base+live+"/admin"),
		chromedp.SetValue(`#split-n`, "2", chromedp.ByQuery), chromedp.Click(`#split-form button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#publish-form`, chromedp.ByQuery), chromedp.Click(`#publish-form button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#teams-state`, chromedp.ByQuery))

	var key string
	b.run("create a Counter key", chromedp.Navigate(base+"/counter"),
		chromedp.SetValue(`form[action="/counter/keys"] input[name=tenant]`, "layout-demo", chromedp.ByQuery),
		chromedp.Click(`form[action="/counter/keys"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h2[text()="Your new API key"]`),
		chromedp.Text(`section.card pre`, &key, chromedp.ByQuery))
	key = strings.TrimSpace(key)
	for i := range 3 {
		body := fmt.Sprintf(`{"events":[{"video_id":"a-video-with-a-rather-long-identifier-%d","type":"VIEW"},{"video_id":"v%d","type":"LIKE","value":3}]}`, i, i)
		req, _ := http.NewRequest(http.MethodPost, base+"/api/counter/v1/batch", bytes.NewBufferString(body))
		req.Header.Set("X-API-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("counter batch with key %q: %v %v", key, resp, err)
		}
		resp.Body.Close()
	}
	// Enricher: users with subscriptions in a few languages and countries,
	// then their lessons, so the completions table has rows and columns.
	enricherKey := regexp.MustCompile(`jfe_\S+`).FindString(runCmd(t, dev.vars(), "enricher", "key", "--user", email, "layout"))
	var users, subs, lessons strings.Builder
	for i, c := range []string{"ES", "DE", "FR", "BR", "JP"} {
		for _, lang := range []string{"es", "de", "pt"} {
			u := fmt.Sprintf("user-%d", i)
			if lang == "es" {
				fmt.Fprintf(&users, `{"operation":"create","uuid":%q,"country":%q}`+"\n", u, c)
			}
			fmt.Fprintf(&subs, `{"operation":"create","user_uuid":%q,"language":%q,"subscription_status":"active","subscription_type":%q}`+"\n", u, lang, []string{"premium", "basic", "family"}[i%3])
			fmt.Fprintf(&lessons, `{"user_uuid":%q,"language":%q}`+"\n", u, lang)
		}
	}
	for _, post := range []struct{ kind, body string }{{"user", users.String()}, {"subscription", subs.String()}, {"lesson", lessons.String()}} {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/enricher/v1/events/"+post.kind, strings.NewReader(post.body))
		req.Header.Set("X-API-Key", enricherKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("enricher %s ingest with key %q: %v %v", post.kind, enricherKey, resp, err)
		}
		resp.Body.Close()
	}
	testenv.Eventually(t, 60*time.Second, "the video has samples and the enricher page shows completions", func() bool {
		var chart, completions bool
		b.run("video page", chromedp.Navigate(base+videoPage), chromedp.Evaluate(`!!document.querySelector("svg.chart")`, &chart),
			chromedp.Navigate(base+"/enricher"), chromedp.Evaluate(`[...document.querySelectorAll("main table th")].some(th => th.textContent === "subscription type")`, &completions))
		if !(chart && completions) {
			t.Logf("waiting: video chart %v, enricher completions %v", chart, completions)
		}
		return chart && completions
	})

	// The demo's planted outlier: its curve with the channel's band and
	// its badge.
	outlierPage := "/tracker/videos/" + youtubetest.DemoOutlierID
	pages := []string{"/", "/signin", "/tracker", "/tracker/abtests", channelPage, videoPage, outlierPage,
		"/events", "/events/e/" + eventID, registration, "/events/mine", "/events/organise", "/events/organise/new", manage, manage + "/exports", "/events/integrations",
		manage + "/analytics", "/events/organise/fees",
		// The live app: this event's lobby; the demo event's refusal (its
		// stage, for its participants, is measured in the live app's test).
		"/events/" + eventID + "/live", demoLiveEvent.FindStringSubmatch(dev.Out.String())[1],
		live + "/admin", live + "/team", live + "/lost-link",
		"/counter", "/counter?tenant=layout-demo", "/enricher", "/media", "/account/data", "/outbox"}
	shots := os.Getenv("LAYOUT_SCREENSHOTS")
	var reference string // the computed style of the first table seen
	measure := func(pages []string) {
		for _, width := range layoutWidths {
			b.run(fmt.Sprintf("viewport %d", width), chromedp.EmulateViewport(int64(width), 900))
			for _, p := range pages {
				p = strings.TrimPrefix(p, base)
				var m struct {
					ScrollWidth, InnerWidth int
					Widest                  string
					Stylesheets             []string
					InlineStyles            int
					Tables                  []string
					YourData                bool
					HeaderFits              bool
				}
				b.run("measure "+p, chromedp.Navigate(base+p), chromedp.WaitReady("footer", chromedp.ByQuery), chromedp.Evaluate(`(() => {
				const vw = window.innerWidth;
				let widest = "";
				for (const el of document.querySelectorAll("body *")) {
					const r = el.getBoundingClientRect();
					if (r.right > vw + 1 && !widest) widest = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : "") + " right=" + Math.round(r.right);
				}
				const header = document.querySelector("header.top");
				return {
					ScrollWidth: document.documentElement.scrollWidth, InnerWidth: vw, Widest: widest,
					Stylesheets: Array.from(document.querySelectorAll('link[rel=stylesheet]')).map(l => new URL(l.href).pathname),
					InlineStyles: document.querySelectorAll("style, [style]").length,
					Tables: Array.from(document.querySelectorAll("main table")).map(t => {
						const s = getComputedStyle(t), c = getComputedStyle(t.querySelector("th, td"));
						return [s.borderCollapse, c.paddingLeft, c.borderBottomStyle, c.textAlign, c.fontSize].join(" ");
					}),
					YourData: !!document.querySelector('header a[href="/account/data"]'),
					HeaderFits: header.scrollWidth <= header.clientWidth + 1,
				};
			})()`, &m))
				if shots != "" {
					var png []byte
					b.run("screenshot "+p, chromedp.FullScreenshot(&png, 100))
					name := regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(p), "_")
					os.WriteFile(filepath.Join(shots, fmt.Sprintf("%d%s.png", width, name)), png, 0o644)
				}
				if m.ScrollWidth > width || m.InnerWidth > width {
					t.Errorf("%s at %d px: the document is %d px wide (viewport %d); first element past the edge: %s", p, width, m.ScrollWidth, m.InnerWidth, m.Widest)
				}
				if !m.HeaderFits {
					t.Errorf("%s at %d px: the header runs off screen", p, width)
				}
				if !m.YourData {
					t.Errorf("%s at %d px: the header has no link to Your data (/account/data)", p, width)
				}
				if len(m.Stylesheets) != 1 || m.Stylesheets[0] != "/static/site.css" || m.InlineStyles > 0 {
					t.Errorf("%s: styles from %v and %d inline style(s); every page uses /static/site.css only", p, m.Stylesheets, m.InlineStyles)
				}
				for _, tbl := range m.Tables {
					if reference == "" {
						reference = tbl
					}
					if tbl != reference {
						t.Errorf("%s at %d px: a table styled %q, another page's %q", p, width, tbl, reference)
					}
				}
			}
		}
	}
	measure(pages)

	// Signed out, the header has a sign-in link instead of the address.
	b.run("sign out", chromedp.Click(`header form[action="/signout"] button`, chromedp.ByQuery), chromedp.WaitVisible(`header .account a[href="/signin"]`, chromedp.ByQuery))
	measure([]string{"/", "/signin", "/events", "/events/e/" + eventID, "/media"})
}
