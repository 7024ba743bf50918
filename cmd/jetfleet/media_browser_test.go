package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The Media pipeline in a real browser against `jetfleet dev`: a signed-in
// user uploads a tiny video from /media, watches its renditions progress
// without reloading, and plays it with hls.js; the page fits 1280 and 390
// px windows. LAYOUT_SCREENSHOTS=dir keeps a PNG of /media at each width.
func TestMediaUploadPlaysInHeadlessChromium(t *testing.T) {
	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.mp4")
	if b, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=12:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", clip).CombinedOutput(); err != nil {
		t.Fatalf("make test video (ffmpeg from `make deps-test`): %v: %s", err, b)
	}
	dev := startDev(t)
	base := dev.Site
	b := startBrowser(t, dev, 1280, 1000)
	b.run("request sign-in", chromedp.Navigate(base+"/signin"), chromedp.SendKeys(`#email`, "media@example.com", chromedp.ByQuery),
		chromedp.Click(`main form[action="/signin"] button`, chromedp.ByQuery), chromedp.WaitVisible(`//h1[text()="Check your email"]`))
	b.followMagicLink("media@example.com", `header form[action="/signout"] button`)

	var h264 bool
	b.run("open /media", chromedp.Navigate(base+"/media"), chromedp.WaitVisible(`#media-upload`, chromedp.ByQuery),
		chromedp.Evaluate(`window.MediaSource ? MediaSource.isTypeSupported('video/mp4; codecs="avc1.4d401f"') : false`, &h264))
	if !h264 {
		t.Fatal("this Chromium cannot play H.264 through MediaSource, which the renditions are")
	}
	b.run("upload", chromedp.SetUploadFiles(`#media-upload input[type=file]`, []string{clip}, chromedp.ByQuery),
		chromedp.Click(`#media-upload button`, chromedp.ByQuery))

	// The page refreshes itself: no reload from here on.
	var state string
	deadline := time.Now().Add(120 * time.Second)
	for {
		b.run("read progress", chromedp.Evaluate(`(() => { const a = document.querySelector(".media-item");
			return a ? a.dataset.state + ": " + a.textContent.replace(/\s+/g, " ") : document.getElementById("media-upload-status").textContent; })()`, &state))
		if strings.HasPrefix(state, "ready") {
			break
		}
		if strings.HasPrefix(state, "failed") || time.Now().After(deadline) {
			t.Fatalf("video not ready; the page shows: %s\n%s", state, dev.Out.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	var playing string
	deadline = time.Now().Add(30 * time.Second)
	for {
		b.run("play", chromedp.Evaluate(`(() => { const v = document.querySelector("video.media-player");
			if (!v) return "no video element"; if (v.paused) v.play().catch(() => {});
			return v.readyState + " " + v.currentTime + (v.error ? " error " + v.error.message : ""); })()`, &playing))
		var rs int
		var ct float64
		fmt.Sscanf(playing, "%d %g", &rs, &ct)
		if rs >= 2 && ct > 0 {
			t.Logf("playing: readyState %d, currentTime %.2f s", rs, ct)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the video does not play: readyState currentTime = %s", playing)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// A file that is no video: its card says so, with ffprobe's words.
	junk := filepath.Join(dir, "notes-not-a-video-with-a-rather-long-file-name.mp4")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a video ", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	b.run("upload a non-video", chromedp.SetUploadFiles(`#media-upload input[type=file]`, []string{junk}, chromedp.ByQuery),
		chromedp.Click(`#media-upload button`, chromedp.ByQuery))
	var failed string
	deadline = time.Now().Add(60 * time.Second)
	for !strings.Contains(failed, "this file is not a video we can read") {
		if time.Now().After(deadline) {
			t.Fatalf("the non-video is not shown as such; its card: %q", failed)
		}
		time.Sleep(250 * time.Millisecond)
		b.run("read the non-video's card", chromedp.Evaluate(`(() => { const a = document.querySelector('.media-item[data-state="failed"]');
			return a ? a.textContent.replace(/\s+/g, " ") : ""; })()`, &failed))
	}
	for _, width := range []int64{1280, 390} {
		var wide []string
		b.run(fmt.Sprintf("/media at %d px", width), chromedp.EmulateViewport(width, 900), chromedp.Navigate(base+"/media"),
			chromedp.WaitVisible(`video.media-player`, chromedp.ByQuery), chromedp.Evaluate(wideInMain, &wide))
		if len(wide) > 0 {
			t.Errorf("/media at %d px: wider than the window: %v", width, wide)
		}
		if shots := os.Getenv("LAYOUT_SCREENSHOTS"); shots != "" { // a PNG to look at
			var png []byte
			b.run("screenshot", chromedp.FullScreenshot(&png, 100))
			os.WriteFile(filepath.Join(shots, fmt.Sprintf("%d_media.png", width)), png, 0o644)
		}
	}
}
