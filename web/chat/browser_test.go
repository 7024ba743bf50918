package chat_test

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"jetfleet/internal/events"
	webchat "jetfleet/web/chat"
)

// The panel as a page embeds it: the site's stylesheet and script, under
// a Content-Security-Policy as strict as the site's.
func panelPage(eventID string) func(*http.ServeMux) {
	return func(mux *http.ServeMux) {
		mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.Dir("../static"))))
		mux.HandleFunc("GET /test/panel", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: https:; media-src 'self' blob:; frame-ancestors 'none'")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(`<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/static/site.css"></head><body><main>`))
			webchat.ChatPanel(eventID, events.MainRoom, false).Render(r.Context(), w)
			w.Write([]byte(`</main></body></html>`))
		})
	}
}

func TestChatPanelInChromiumShowsHistoryLoadsEarlierAndPostsEscapedAt390px(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("headless Chromium is required (apt-get install chromium): ", err)
	}
	w := newWorld(t)
	w.post(events.MainRoom, "before", 30)
	e := w.startEdge(edgeOpts{routes: panelPage(w.ev.ID)})

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()

	count := func(n *int) chromedp.Action {
		return chromedp.Evaluate(`document.querySelectorAll(".chat-log li").length`, n)
	}
	var n int
	if err := chromedp.Run(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(e.URL+"/test/signin?uid="+patID+"&email="+patEmail),
		chromedp.Navigate(e.URL+"/test/panel"),
		chromedp.Poll(`document.querySelectorAll(".chat-log li").length === 20`, nil, chromedp.WithPollingTimeout(20*time.Second)),
	); err != nil {
		t.Fatalf("the last 20 messages did not show: %v", err)
	}
	// Scrolling to the top loads the 10 before them.
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`document.querySelector(".chat-log").scrollTop = 0; document.querySelector(".chat-log").dispatchEvent(new Event("scroll"))`, nil),
		chromedp.Poll(`document.querySelectorAll(".chat-log li").length === 30`, nil, chromedp.WithPollingTimeout(20*time.Second)),
	); err != nil {
		chromedp.Run(ctx, count(&n))
		t.Fatalf("earlier messages did not load (%d shown): %v", n, err)
	}
	var text string
	var bolds, width int
	if err := chromedp.Run(ctx,
		chromedp.SendKeys(".chat-form textarea", "<b>hi</b> from a phone"),
		chromedp.Click(".chat-form button", chromedp.ByQuery),
		chromedp.Poll(`document.querySelectorAll(".chat-log li").length === 31`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Text(".chat-log li:last-child .chat-text", &text, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll(".chat-log b").length`, &bolds),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &width),
	); err != nil {
		t.Fatalf("posting from the page: %v", err)
	}
	if strings.TrimSpace(text) != "<b>hi</b> from a phone" || bolds != 0 {
		t.Errorf("posted message shows %q with %d <b> elements; want the text as typed, escaped", text, bolds)
	}
	if width > 390 {
		t.Errorf("the page is %d px wide on a 390 px phone", width)
	}
}
