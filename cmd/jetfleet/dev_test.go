package main

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// `jetfleet dev` is what `make run` starts: from an empty data dir it must
// bring up NATS with every asset provisioned, a local ClickHouse with the
// schema, the edge, and stop all of it on cancel.
func TestDevStartsEverythingAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testenv.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--nats-monitor-port", "0"},
			env(map[string]string{"DATA_DIR": dir, "LOG_LEVEL": "warn"}), &out)
	}()

	site := regexp.MustCompile(`site\s+(http://\S+)`)
	natsURL := regexp.MustCompile(`NATS\s+(nats://\S+)`)
	testenv.Eventually(t, 60*time.Second, "dev prints its summary", func() bool {
		select {
		case err := <-done:
			t.Fatalf("dev exited early: %v\n%s", err, out.String())
		default:
		}
		return site.MatchString(out.String())
	})
	base := site.FindStringSubmatch(out.String())[1]

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Tracker") {
		t.Fatalf("home = %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var checks map[string]string
	json.NewDecoder(resp.Body).Decode(&checks)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz = %d %v", resp.StatusCode, checks)
	}

	// NATS refuses anyone without the generated credentials; an operator
	// with the printed `nats context save` line sees every stream.
	printedURL := natsURL.FindStringSubmatch(out.String())[1]
	if nc, err := nats.Connect(printedURL); err == nil {
		nc.Close()
		t.Fatal("dev's NATS server let a client in without credentials")
	}
	ctxLine := regexp.MustCompile(`nats context save \S+ --server (\S+) --user (\S+) --password (\S+) --select`).FindStringSubmatch(out.String())
	if ctxLine == nil {
		t.Fatalf("dev printed no nats context line:\n%s", out.String())
	}
	nc, err := nats.Connect(ctxLine[1], nats.UserInfo(ctxLine[2], ctxLine[3]))
	if err != nil {
		t.Fatalf("connect with the printed credentials: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	lister := js.StreamNames(testenv.Context(t, 5*time.Second))
	for n := range lister.Name() {
		names[n] = true
	}
	for _, s := range subjects.Streams(subjects.Options{}) {
		if !names[s.Name] {
			t.Errorf("stream %s not provisioned by dev (have %v)", s.Name, names)
		}
	}

	signInThroughOutbox(t, base)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30s")
	}
	if out, _ := exec.Command("pgrep", "-f", dir).Output(); len(out) > 0 {
		t.Fatalf("a process still runs on the data dir after dev stopped: %s", out)
	}
}

// signInThroughOutbox is the newcomer's path on `make run`: ask for a link,
// find it in the outbox (the mail role delivered it there), open it, confirm.
// It returns the signed-in client.
func signInThroughOutbox(t *testing.T, base string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	page := func(path string) string {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	form := page("/signin")
	resp, err := c.PostForm(base+"/signin", url.Values{"email": {"newcomer@example.com"}, "csrf_token": {csrf.FindStringSubmatch(form)[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	link := regexp.MustCompile(`href="(http://[^"]+/signin/verify\?token=[^"]+)"`)
	var verify string
	testenv.Eventually(t, 15*time.Second, "the sign-in mail reaches the outbox", func() bool {
		m := link.FindStringSubmatch(page("/outbox"))
		if m != nil {
			verify = html.UnescapeString(m[1])
		}
		return m != nil
	})
	u, _ := url.Parse(verify)
	confirm := page(u.RequestURI())
	resp, err = c.PostForm(base+"/signin/verify", url.Values{"token": {u.Query().Get("token")}, "csrf_token": {csrf.FindStringSubmatch(confirm)[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if home := page("/"); !strings.Contains(home, "newcomer@example.com") {
		t.Fatal("not signed in after following the outbox link")
	}
	return c
}

func TestDevServesOnLoopbackUnlessTold(t *testing.T) {
	for _, tc := range []struct {
		addr             string
		explicit, expose bool
		want             string
	}{
		{":8080", false, false, "127.0.0.1:8080"},
		{":8080", false, true, ":8080"},
		{"0.0.0.0:9000", true, false, "0.0.0.0:9000"},
	} {
		if got := devHTTPAddr(tc.addr, tc.explicit, tc.expose); got != tc.want {
			t.Errorf("devHTTPAddr(%q, explicit %v, expose %v) = %q, want %q", tc.addr, tc.explicit, tc.expose, got, tc.want)
		}
	}
}
