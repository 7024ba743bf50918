package main

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
)

// devRun is a `jetfleet dev` a test started on a fresh data dir, as a
// newcomer's `make run` would, with what its summary printed.
type devRun struct {
	// Site is http://localhost:<port>, the host dev's mail links name, so a
	// browser's cookies carry from a magic link to the rest of the site.
	Site, NATSURL, NATSUser, NATSPassword string
	DataDir                               string
	Out                                   *testenv.Buffer
}

var (
	devSite    = regexp.MustCompile(`site\s+http://[^:\s]+:(\d+)`)
	devContext = regexp.MustCompile(`nats context save \S+ --server (\S+) --user (\S+) --password (\S+) --select`)
)

// startDev runs `jetfleet dev` with args (free ports unless args say
// otherwise) on a fresh data dir until the test ends, and waits for its
// summary.
func startDev(t *testing.T, args ...string) *devRun {
	t.Helper()
	return startDevIn(t, t.TempDir(), args...)
}

// startDevIn is startDev on dataDir.
func startDevIn(t *testing.T, dataDir string, args ...string) *devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &devRun{Out: &testenv.Buffer{}, DataDir: dataDir}
	done := make(chan error, 1)
	all := append([]string{"dev", "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--nats-monitor-port", "0"}, args...)
	go func() {
		done <- run(ctx, all, env(map[string]string{"DATA_DIR": d.DataDir, "LOG_LEVEL": "warn"}), d.Out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("dev did not stop within 30s")
		}
	})
	testenv.Eventually(t, 60*time.Second, "dev prints its summary", func() bool {
		select {
		case err := <-done:
			t.Fatalf("dev exited early: %v\n%s", err, d.Out.String())
		default:
		}
		return devSite.MatchString(d.Out.String()) && devContext.MatchString(d.Out.String())
	})
	d.Site = "http://localhost:" + devSite.FindStringSubmatch(d.Out.String())[1]
	m := devContext.FindStringSubmatch(d.Out.String())
	d.NATSURL, d.NATSUser, d.NATSPassword = m[1], m[2], m[3]
	return d
}

// connect signs in to dev's NATS with the credentials it printed.
func (d *devRun) connect(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	return testenv.Connect(t, d.NATSURL, nats.UserInfo(d.NATSUser, d.NATSPassword))
}

// vars is the environment an operator's jetfleet command needs against it.
func (d *devRun) vars() map[string]string {
	return map[string]string{"NATS_URL": d.NATSURL, "NATS_USER": d.NATSUser, "NATS_PASSWORD": d.NATSPassword, "LOG_LEVEL": "warn"}
}

// startBrowser starts headless Chromium (Debian's, from `make deps-test`)
// for the rest of the test, its window width×height, against dev's site.
func startBrowser(t *testing.T, dev *devRun, width, height int) *browser {
	t.Helper()
	chromium := chromiumPath(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), // the media test plays video
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")), chromedp.WindowSize(width, height),
	)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Run(bctx); err != nil {
		t.Fatalf("start headless Chromium (%s): %v", chromium, err)
	}
	return &browser{t: t, ctx: bctx, base: dev.Site, used: map[string]bool{}}
}
