package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
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

var demoYouTubeURL = regexp.MustCompile(`YouTube stand-in at (http://\S+);`)

func writePNG(t *testing.T, path string, w, h int, c color.Color) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The A/B test acceptance on `jetfleet dev --demo`, as a new user tries it:
// connect the demo channel through the Google stand-in's consent page,
// create a 2-variant test with one-minute slots, upload both thumbnails
// straight to blob storage from the browser (a wrong one is refused with a
// message), start it, see the thumbnails rotate on the demo YouTube, and
// get the result on the page and in the outbox.
func TestABTestDemoAcceptanceInHeadlessChromium(t *testing.T) {
	dev := startDev(t, "--demo")
	base := dev.Site
	ytURL := demoYouTubeURL.FindStringSubmatch(dev.Out.String())[1]
	b := startBrowser(t, dev, 1280, 1400)
	const email = "abtester@example.com"
	b.run("request sign-in", chromedp.Navigate(base+"/signin"), chromedp.SendKeys(`#email`, email, chromedp.ByQuery),
		chromedp.Click(`main form[action="/signin"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h1[text()="Check your email"]`))
	b.followMagicLink(email, `header form[action="/signout"] button`)

	demo := youtubetest.DemoChannels()[1]
	b.run("connect the demo channel", chromedp.Navigate(base+"/tracker/abtests"), chromedp.Click(`#connect`, chromedp.ByQuery),
		chromedp.WaitVisible(`#approve`, chromedp.ByQuery), chromedp.Click(`#approve`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.note`, chromedp.ByQuery))
	if got := b.text("main"); !strings.Contains(got, "Connected: "+demo.Title) {
		t.Fatalf("after consent the page says:\n%s", got)
	}

	video := "demo1000000" // the oldest video of the demo channel
	var draft string
	b.run("create a test with one-minute slots", chromedp.SetValue(`input[name=video]`, "https://youtu.be/"+video, chromedp.ByQuery),
		chromedp.SetValue(`select[name=rotation]`, "1m0s", chromedp.ByQuery), chromedp.SetValue(`input[name=days]`, "3", chromedp.ByQuery),
		chromedp.SetValue(`input[name=title0]`, "Sourdough for people in a hurry", chromedp.ByQuery),
		chromedp.SetValue(`input[name=title1]`, "Sourdough in ONE hour (really)", chromedp.ByQuery),
		chromedp.Click(`#new-test button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`#ab-start`, chromedp.ByQuery),
		chromedp.Location(&draft))

	dir := t.TempDir()
	red, blue, small := filepath.Join(dir, "red.png"), filepath.Join(dir, "blue.png"), filepath.Join(dir, "small.png")
	writePNG(t, red, 1280, 720, color.RGBA{220, 30, 30, 255})
	writePNG(t, blue, 1280, 720, color.RGBA{30, 30, 220, 255})
	writePNG(t, small, 320, 180, color.RGBA{30, 220, 30, 255})
	upload := func(row int, file, wait string) {
		b.run("upload "+filepath.Base(file), chromedp.SetUploadFiles(fmt.Sprintf(`#variants tbody tr:nth-child(%d) input[type=file]`, row), []string{file}, chromedp.ByQuery),
			chromedp.WaitVisible(fmt.Sprintf(`//table[@id="variants"]/tbody/tr[%d]//span[contains(., %q)]`, row, wait)))
	}
	upload(1, red, "1280×720")
	upload(2, small, "at least 640 px wide")
	b.run("start is refused with the reason", chromedp.Click(`#ab-start`, chromedp.ByQuery),
		chromedp.WaitVisible(`//p[@class="problem" and contains(., "cannot start yet")]`),
		chromedp.WaitVisible(`//span[@class="problem" and contains(., "640 px")]`))
	upload(2, blue, "1280×720")

	before := thumbHash(t, ytURL, video)
	b.run("start", chromedp.Click(`#ab-start`, chromedp.ByQuery), chromedp.WaitVisible(`//b[@id="status" and text()="running"]`))

	seen := map[string]bool{}
	testenv.EventuallyState(t, 150*time.Second, "both variants' thumbnails served by the demo YouTube", func() (bool, any) {
		if h := thumbHash(t, ytURL, video); h != before {
			seen[h] = true
		}
		return len(seen) >= 2, seen
	})
	testenv.EventuallyState(t, 240*time.Second, "the result on the test's page", func() (bool, any) {
		var status string
		b.run("test page", chromedp.Navigate(draft), chromedp.Text(`#status`, &status, chromedp.ByQuery))
		return status == "done", status
	})
	result := b.text("#result")
	if !strings.Contains(result, "won") && !strings.Contains(result, "No clear winner") {
		t.Fatalf("result %q", result)
	}
	var segments int
	b.run("curve coloured by variant", chromedp.Evaluate(`new Set(Array.from(document.querySelectorAll("svg.chart line.segment")).map(l => l.getAttribute("stroke"))).size`, &segments))
	if segments < 2 {
		t.Fatalf("the curve has %d colours, want one per variant", segments)
	}
	// The Tracker's scraper saw the rotations on the demo watch page.
	var markers int
	b.run("changes marked", chromedp.Evaluate(`document.querySelectorAll("svg.chart line.marker").length`, &markers))
	if markers == 0 {
		t.Fatal("no thumbnail or title change marked on the curve: the scraper did not see the rotation")
	}
	testenv.EventuallyState(t, 30*time.Second, "the result mail in the outbox", func() (bool, any) {
		var mails string
		b.run("outbox", chromedp.Navigate(base+"/outbox"), chromedp.Text("main", &mails, chromedp.ByQuery))
		return strings.Contains(mails, "A/B test result"), mails
	})

	for _, width := range []int64{1280, 390} {
		for _, page := range []string{"/tracker/abtests", strings.TrimPrefix(draft, base)} {
			var wide []string
			b.run(fmt.Sprintf("%s at %d px", page, width), chromedp.EmulateViewport(width, 900), chromedp.Navigate(base+page),
				chromedp.Evaluate(wideInMain, &wide))
			if len(wide) > 0 {
				t.Errorf("%s at %d px: wider than the window: %v", page, width, wide)
			}
		}
	}
}

func thumbHash(t *testing.T, ytURL, video string) string {
	t.Helper()
	resp, err := http.Get(ytURL + "/vi/" + video + "/default.jpg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:8])
}
