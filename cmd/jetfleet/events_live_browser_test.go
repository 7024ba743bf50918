package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jetfleet/internal/testenv"
)

// liveDemo is `jetfleet dev --demo` with its live event, for the browser
// tests of the live app. Each person gets their own Chromium (own cookies),
// so a test can hold a participant's and an admin's page open at once.
type liveDemoDev struct {
	dev     *devRun
	eventID string
	app     string // path of the event's live app
}

var demoLiveEvent = regexp.MustCompile(`live event\s+.*?https?://\S+?(/events/([A-Za-z0-9_-]{16})/live)`)

func startLiveDemoDev(t *testing.T) *liveDemoDev {
	t.Helper()
	dev := startDev(t, "--demo")
	m := demoLiveEvent.FindStringSubmatch(dev.Out.String())
	if m == nil {
		t.Fatalf("dev --demo does not print its live event:\n%s", dev.Out.String())
	}
	return &liveDemoDev{dev: dev, app: m[1], eventID: m[2]}
}

// person opens a browser as email: it asks for the app, is sent to sign
// in, follows the magic link from the outbox and lands back where it
// asked, on landing (a selector of the page it should see).
func (l *liveDemoDev) person(t *testing.T, email, landing string, width, height int) *browser {
	t.Helper()
	b := startBrowser(t, l.dev, width, height)
	b.signInAt(l.app, email, landing)
	return b
}

// signInAt opens path signed out, signs in there as email and waits for
// landing on the page the gate returns to.
func (b *browser) signInAt(path, email, landing string) {
	b.t.Helper()
	var loc string
	b.run("open "+path+" signed out", chromedp.Navigate(b.base+path), chromedp.WaitVisible(`#email`, chromedp.ByQuery), chromedp.Location(&loc))
	if u, err := url.Parse(loc); err != nil || u.Path != "/signin" || u.Query().Get("next") != path {
		b.t.Fatalf("signed out, %s leads to %s; want the sign-in page coming back to it", path, loc)
	}
	b.run("ask for a link as "+email, chromedp.SendKeys(`#email`, email, chromedp.ByQuery),
		chromedp.Click(`main form[action="/signin"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h1[text()="Check your email"]`))
	b.followMagicLink(email, landing)
}

// screenshot keeps a PNG of the page as name.png in LIVE_SCREENSHOTS (a
// directory), when that is set.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("LIVE_SCREENSHOTS")
	if dir == "" {
		return
	}
	var png []byte
	b.run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// publishEvent creates and publishes an event with one free ticket as the
// signed-in person (who becomes its organiser), starting at start in UTC,
// and returns its id.
func (b *browser) publishEvent(title string, start time.Time) string {
	b.t.Helper()
	var manage string
	b.run("create "+title, chromedp.Navigate(b.base+"/events/organise/new"),
		chromedp.SetValue(`#title`, title, chromedp.ByQuery), chromedp.SetValue(`#business_type`, "technology", chromedp.ByQuery),
		chromedp.SetValue(`#start`, start.UTC().Format("2006-01-02T15:04"), chromedp.ByQuery),
		chromedp.SetValue(`#end`, start.Add(2*time.Hour).UTC().Format("2006-01-02T15:04"), chromedp.ByQuery),
		chromedp.SetValue(`#time_zone`, "UTC", chromedp.ByQuery), chromedp.SetValue(`#capacity`, "10", chromedp.ByQuery),
		chromedp.Click(`#event-form button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`#ticket-form`, chromedp.ByQuery), chromedp.Location(&manage))
	b.run("add a ticket and publish", chromedp.SetValue(`#ticket_name`, "Community", chromedp.ByQuery), chromedp.SetValue(`#price`, "0", chromedp.ByQuery),
		chromedp.SetValue(`#quantity`, "10", chromedp.ByQuery), chromedp.Click(`#add-ticket`, chromedp.ByQuery),
		chromedp.WaitVisible(`//section//ul/li[starts-with(normalize-space(.), "Community ·")]`), chromedp.Click(`#publish`, chromedp.ByQuery),
		chromedp.WaitVisible(`#live-app-link`, chromedp.ByQuery))
	manage = strings.SplitN(manage, "?", 2)[0]
	return manage[strings.LastIndex(manage, "/")+1:]
}

// appState is what the live app page shows of itself.
type appState struct {
	Phase, Role, Delay string
	Heartbeats         int
	CurrentTime        float64
	ReadyState         int
	DelaySeconds       string
	TeamLink, Admin    bool
	Error              string
}

func (b *browser) appState() appState {
	b.t.Helper()
	var s appState
	b.run("read the app", chromedp.Evaluate(`(() => {
		const app = document.getElementById("live-app") || {dataset: {}};
		const v = document.getElementById("live-video");
		if (v && v.paused) v.play().catch(() => {});
		const text = id => (document.getElementById(id) || {}).textContent || "";
		return {
			Phase: app.dataset.phase || "", Role: text("live-role"), Delay: text("live-delay"),
			Heartbeats: Number(app.dataset.heartbeats || 0),
			CurrentTime: v ? v.currentTime : -1, ReadyState: v ? v.readyState : -1, DelaySeconds: v ? (v.dataset.delay || "") : "",
			TeamLink: !!document.getElementById("team-link"), Admin: !!document.getElementById("admin-link"),
			Error: v && v.error ? v.error.message : "",
		};
	})()`, &s))
	return s
}

// waitStreamPlays waits until the stream plays on: the video's time moves
// on by at least two seconds and the page shows the delay behind live.
func (b *browser) waitStreamPlays() appState {
	b.t.Helper()
	var first, last appState
	testenv.Eventually(b.t, 60*time.Second, "the live stream plays and shows its delay", func() bool {
		last = b.appState()
		if last.ReadyState < 2 || last.CurrentTime <= 0 {
			b.t.Logf("waiting for the stream: %+v", last)
			return false
		}
		if first.CurrentTime <= 0 {
			first = last
		}
		return last.CurrentTime >= first.CurrentTime+2 && strings.Contains(last.Delay, "s behind live") && last.DelaySeconds != ""
	})
	return last
}

// fits reports how wide the page is at width px (scrollWidth ≤ width).
func (b *browser) fits(width int) bool {
	b.t.Helper()
	var w int
	b.run(fmt.Sprintf("viewport %d", width), chromedp.EmulateViewport(int64(width), 900),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &w))
	return w <= width
}

// The live app as its people meet it on `make run`: the demo event is live
// with its local stream; a participant signs in from the app's address,
// lands back on it, sees the stream play with its delay behind live and
// sends heartbeats; a host gets the admin view; someone without a ticket
// is told why not and what to do. (The chat, team and help steps join
// this test as those parts land.)
func TestEventsLiveAppInHeadlessChromium(t *testing.T) {
	l := startLiveDemoDev(t)

	// --- a participant ---
	ada := l.person(t, "ada@demo.example", "#live-app", 1280, 900)
	st := ada.appState()
	if st.Phase != "live" || st.Role != "participant" || !st.TeamLink || st.Admin {
		t.Fatalf("participant's app: %+v; want the live stage, the team link, no admin link", st)
	}
	st = ada.waitStreamPlays()
	delay, _ := strconv.ParseFloat(st.DelaySeconds, 64)
	t.Logf("participant: playing at %.1f s, %q (delay %.1f s)", st.CurrentTime, st.Delay, delay)
	if delay <= 0 || delay > 60 {
		t.Errorf("delay behind live %.1f s; want a few seconds", delay)
	}
	testenv.Eventually(t, 20*time.Second, "the app's first heartbeat is accepted", func() bool {
		return ada.appState().Heartbeats >= 1
	})
	if !ada.fits(390) {
		t.Error("the live app is wider than a 390 px phone")
	}
	ada.screenshot("live-390")
	ada.run("back to laptop width", chromedp.EmulateViewport(1280, 900))
	ada.screenshot("live-1280")

	// --- a host, at the same time ---
	host := l.person(t, "host@demo.example", "#live-app", 1280, 900)
	if st := host.appState(); st.Phase != "live" || st.Role != "host" || !st.Admin {
		t.Fatalf("host's app: %+v; want the live stage with the admin dashboard link", st)
	}
	host.waitStreamPlays()

	// --- the main chat: what the participant posts, the host sees (escaped) ---
	ada.run("post in the main chat",
		chromedp.WaitVisible(`section.chat .chat-form textarea`, chromedp.ByQuery),
		chromedp.SendKeys(`section.chat .chat-form textarea`, "Hello from Ada <b>3</b>", chromedp.ByQuery),
		chromedp.Click(`section.chat .chat-form button`, chromedp.ByQuery))
	testenv.Eventually(t, 20*time.Second, "the host's chat shows the participant's message", func() bool {
		return strings.Contains(host.text("section.chat .chat-log"), "Hello from Ada <b>3</b>")
	})
	testenv.Eventually(t, 20*time.Second, "the participant's own chat shows it", func() bool {
		return strings.Contains(ada.text("section.chat .chat-log"), "Hello from Ada <b>3</b>")
	})

	// --- someone without a ticket ---
	host.run("sign out", chromedp.Click(`header form[action="/signout"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`header .account a[href="/signin"]`, chromedp.ByQuery))
	host.signInAt(l.app, "eve@example.com", "#refusal")
	if s := host.text("main"); !strings.Contains(s, "eve@example.com") || !strings.Contains(s, "Sign in with the address you registered") {
		t.Fatalf("refusal page says:\n%s", s)
	}
	host.screenshot("live-refusal")

	// --- an organiser's own event, before it starts: the lobby counts down ---
	lobby := "/events/" + host.publishEvent("Tomorrow's hack night", time.Now().Add(26*time.Hour)) + "/live"
	var first, later string
	host.run("open the lobby", chromedp.Navigate(host.base+lobby), chromedp.WaitVisible(`#countdown`, chromedp.ByQuery),
		chromedp.Text(`#countdown`, &first, chromedp.ByQuery))
	testenv.Eventually(t, 5*time.Second, "the countdown ticks", func() bool {
		later = host.text("#countdown")
		return later != first
	})
	if !strings.HasPrefix(first, "1 d ") || host.appState().Phase != "lobby" {
		t.Errorf("lobby countdown %q → %q; want about a day to go", first, later)
	}
}
