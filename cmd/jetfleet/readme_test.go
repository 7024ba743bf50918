package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// TestMain lets the README test put this test binary on PATH as
// `jetfleet`: a recipe's `jetfleet …` runs this package's main.
func TestMain(m *testing.M) {
	if os.Getenv("JETFLEET_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// recipe is one command line of README.md.
type recipe struct {
	section, line string
}

var (
	fence      = regexp.MustCompile("^```(\\S*)")
	codeSpan   = regexp.MustCompile("`([^`]+)`")
	recipeHead = regexp.MustCompile(`^(nats|jetfleet|curl) `)
)

// readmeRecipes extracts every `nats`, `jetfleet` and `curl` line of the
// README: lines of shell code blocks (continuations joined, comments cut)
// and code spans of the prose (which may wrap a line). The unlabelled
// blocks are a synopsis and a diagram, not commands to run.
func readmeRecipes(readme string) []recipe {
	var out []recipe
	seen := map[string]bool{}
	add := func(section, line string) {
		line = strings.Join(strings.Fields(line), " ")
		if recipeHead.MatchString(line) && !seen[line] {
			seen[line] = true
			out = append(out, recipe{section, line})
		}
	}
	section, lang, inBlock := "", "", false
	var prose strings.Builder
	flush := func() {
		for _, m := range codeSpan.FindAllStringSubmatch(prose.String(), -1) {
			add(section, m[1])
		}
		prose.Reset()
	}
	var cont string
	for _, l := range strings.Split(readme, "\n") {
		if m := fence.FindStringSubmatch(l); m != nil {
			if !inBlock {
				flush()
				lang = m[1]
			}
			inBlock = !inBlock
			continue
		}
		if inBlock {
			if lang != "sh" {
				continue
			}
			l = cont + l
			if strings.HasSuffix(l, "\\") {
				cont = strings.TrimSuffix(l, "\\") + " "
				continue
			}
			cont = ""
			if i := strings.Index(l, " # "); i >= 0 {
				l = l[:i]
			}
			add(section, l)
			continue
		}
		if strings.HasPrefix(l, "## ") {
			flush()
			section = strings.TrimPrefix(l, "## ")
			continue
		}
		if strings.TrimSpace(l) == "" {
			flush()
		}
		prose.WriteString(l + "\n")
	}
	flush()
	return out
}

// readmeSkipped are the recipe lines this test does not run, and why.
var readmeSkipped = map[string]string{
	"jetfleet dev":                         "the test runs it (as make run does)",
	"jetfleet dev --demo":                  "the test runs it (as make run does)",
	"jetfleet counter rebuild --since 24h": "wants the counter workers stopped, which jetfleet dev runs",
	"nats server report jetstream":         "needs a cluster's system account; jetfleet dev has none (the README says: clusters)",
	"nats kv del":                          "a fragment of a sentence (`nats kv del` it), not a command",
	"jetfleet enricher load":               "names the verb in the benchmark table; `jetfleet enricher load FILE` runs",
	"jetfleet <no-reply@localhost>":        "the default value of SMTP_FROM, not a command",
	"nats stream view DLQ":                 "an interactive pager (needs a terminal); `nats stream get DLQ <seq>` runs",
	"nats kv get TRACKER youtube.status":   "exists only once YouTube has refused us; the demo world never refuses",
	"nats kv get":                          "names the command `jetfleet enricher where` prints",
}

// placeholder is a <name> left in a recipe after filling.
var placeholder = regexp.MustCompile(`<[a-z-]+>`)

// readmeRunsUntilStopped are recipes that keep running (subscriptions):
// they pass when still running after a moment.
var readmeRunsUntilStopped = regexp.MustCompile(`^nats sub `)

// Every recipe in the README runs as written against `jetfleet dev --demo`
// (what `make run` starts), with its placeholders filled from real data.
func TestReadmeRecipesRunAgainstDevDemo(t *testing.T) {
	natsCLI := findNATSCLI()
	if natsCLI == "" {
		t.Fatal("the NATS CLI is required to check the README's operator recipes and was not found on PATH: run `make nats-cli` (go install github.com/nats-io/natscli/nats@v0.5.0)")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required to check the README's recipes: apt-get install curl")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	recipes := readmeRecipes(string(readme))
	if len(recipes) < 30 {
		t.Fatalf("found only %d recipes in README.md: %v", len(recipes), recipes)
	}
	inReadme := map[string]bool{}
	for _, r := range recipes {
		inReadme[r.line] = true
	}
	for line := range readmeSkipped {
		if !inReadme[line] {
			t.Errorf("skip list names %q, which the README no longer has: drop it from readmeSkipped", line)
		}
	}

	// The recipes run from the directory `make run` runs in: data is ./data.
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	ctx := t.Context()
	dev := startDevIn(t, dir, "--demo")
	out := dev.Out
	port := strings.TrimPrefix(dev.Site, "http://localhost:")
	base := dev.Site
	natsURL := dev.NATSURL
	natsVars := dev.vars()
	natsPassword := natsVars["NATS_PASSWORD"]
	chPassword, err := os.ReadFile(filepath.Join(dir, "clickhouse.password"))
	if err != nil {
		t.Fatal(err)
	}
	// dev prints the DSN with its password masked, as an operator sees it.
	chURL := strings.Replace(regexp.MustCompile(`ClickHouse\s+(clickhouse://\S+)`).FindStringSubmatch(out.String())[1], "*****", url.QueryEscape(string(chPassword)), 1)
	nc, err := nats.Connect(natsURL, nats.UserInfo(devNATSUser, natsPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// Data for the placeholders, made the way a newcomer makes it.
	const email = "newcomer@example.com"
	c := signInThroughOutbox(t, base)
	form := func(page, path string, v url.Values) *http.Response {
		t.Helper()
		resp, err := c.Get(base + page)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(resp)
		m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no form on %s (%d)", page, resp.StatusCode)
		}
		v.Set("csrf_token", m[1])
		resp, err = c.PostForm(base+path, v)
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		if resp.StatusCode >= 400 {
			t.Fatalf("POST %s = %d", path, resp.StatusCode)
		}
		return resp
	}
	form("/tracker", "/tracker/track", url.Values{"ref": {"@rocketlab"}})
	form("/tracker", "/tracker/track", url.Values{"ref": {"demo0000000"}})
	day := time.Now().AddDate(0, 0, 7).Format("2006-01-02")
	resp := form("/events/organise/new", "/events/organise/new", url.Values{"title": {"README night"}, "description": {"Recipes"},
		"business_type": {"technology"}, "start": {day + "T18:00"}, "end": {day + "T20:00"}, "time_zone": {"UTC"}, "capacity": {"10"}})
	manage := resp.Request.URL.Path
	form(manage, manage+"/tickets", url.Values{"ticket_name": {"Free"}, "price": {"0"}, "currency": {"eur"}, "quantity": {"10"}})
	form(manage, manage+"/publish", url.Values{})
	eventID := strings.TrimPrefix(manage, "/events/organise/")
	var ticket string
	testenv.Eventually(t, 10*time.Second, "the event is public", func() bool {
		resp, err := c.Get(base + "/events/e/" + eventID)
		if err != nil {
			return false
		}
		m := regexp.MustCompile(`name="ticket" value="([^"]+)"`).FindStringSubmatch(readAll(resp))
		if m != nil {
			ticket = m[1]
		}
		return m != nil
	})
	form("/events/e/"+eventID, "/events/e/"+eventID+"/register", url.Values{"ticket": {ticket}, "name": {"New Comer"}, "email": {email}, "terms": {"yes"}, "data_sharing": {"yes"}})
	form("/account/data", "/account/data/request", url.Values{"kind": {"export"}})
	// A message no worker can read, so the DLQ recipes have a dead letter.
	if _, err := js.Publish(testenv.Context(t, 5*time.Second), subjects.MailSend, []byte("not a mail")); err != nil {
		t.Fatal(err)
	}
	// A lesson of user-1, so its partition has an owner (a pin) and OUTPUT
	// an enriched lesson for the Enricher's recipes.
	if _, err := js.Publish(testenv.Context(t, 5*time.Second), subjects.EnricherInput(subjects.EnricherKindLesson, "user-1"),
		[]byte(`{"user_uuid":"user-1","language":"es","title":"L1"}`)); err != nil {
		t.Fatal(err)
	}
	partition := fmt.Sprint(subjects.EnricherPartitionOf("user-1"))
	snapshot := filepath.Join(dir, "snapshot.ndjson")
	os.WriteFile(snapshot, []byte(`{"uuid":"user-1","name":"Ada","country":"ES","active":true}
{"user_uuid":"user-1","language":"es","subscription_status":"active","subscription_type":"premium"}
`), 0o644)

	key := func(bucket, prefix string) string {
		t.Helper()
		var found string
		testenv.Eventually(t, 60*time.Second, "a key "+prefix+"* in "+bucket, func() bool {
			kv, err := js.KeyValue(testenv.Context(t, 5*time.Second), bucket)
			if err != nil {
				return false
			}
			keys, err := kv.ListKeysFiltered(testenv.Context(t, 5*time.Second), prefix+">")
			if err != nil {
				return false
			}
			for k := range keys.Keys() {
				found = strings.TrimPrefix(k, prefix)
			}
			return found != ""
		})
		return found
	}
	videoID := key(subjects.TrackerBucket, "hourly.")
	reg := key(subjects.EventsRegistrationsBucket, "reg."+eventID+".")
	gdprID := key(subjects.GDPRRequestsBucket, "req.")
	outboxKey := key(subjects.OutboxBucket, "")
	var dlqSeq uint64
	testenv.Eventually(t, 30*time.Second, "the unreadable mail reaches the DLQ", func() bool {
		s, err := js.Stream(testenv.Context(t, 5*time.Second), subjects.DLQStream)
		if err != nil {
			return false
		}
		dlqSeq = s.CachedInfo().State.LastSeq
		return dlqSeq > 0
	})
	apiKey := regexp.MustCompile(`jfc_\S+`).FindString(runCmd(t, natsVars, "counter", "apikey", "create", "--tenant", "readme"))

	fill := strings.NewReplacer(
		"TRACKER video.<id>", "TRACKER video."+videoID, "TRACKER.hourly.<id>", "TRACKER.hourly."+videoID,
		"event.<id>", "event."+eventID, "seats.<id>", "seats."+eventID, "eventschat.<event>.", "eventschat."+eventID+".",
		"reg.<event>.<registration>", "reg."+eventID+"."+reg, "req.<id>", "req."+gdprID,
		"OUTBOX <key>", "OUTBOX "+outboxKey, "enricher-p<p>", "enricher-p"+partition, "INPUT_<p>", "INPUT_"+partition,
		"localhost:8080", "localhost:"+port, "nats://127.0.0.1:4222", natsURL,
		"--tenant T", "--tenant readme", " EMAIL", " "+email, " FILE", " "+snapshot, " NAME", " readme-test",
	)

	// PATH: this test binary as `jetfleet`, and curl failing on an HTTP
	// error (a recipe answered 4xx/5xx is broken too). KEY is what the
	// Counter block's `KEY=jfc_…` line asks the reader to set.
	bin := t.TempDir()
	self, _ := os.Executable()
	os.WriteFile(filepath.Join(bin, "jetfleet"), []byte("#!/bin/sh\nJETFLEET_TEST_AS_MAIN=1 exec "+self+" \"$@\"\n"), 0o755)
	os.WriteFile(filepath.Join(bin, "curl"), []byte("#!/bin/sh\nexec "+curl+" --fail-with-body \"$@\"\n"), 0o755)
	// The nats CLI connects only through the context the README has the
	// reader save, not through the environment the jetfleet verbs use.
	os.WriteFile(filepath.Join(bin, "nats"), []byte("#!/bin/sh\nexec env -u NATS_URL -u NATS_USER -u NATS_PASSWORD "+natsCLI+" \"$@\"\n"), 0o755)
	home := t.TempDir() // no nats contexts of the machine's user
	// NATS_USER/NATS_PASSWORD as the README's export line sets them (for
	// the jetfleet verbs); the nats CLI gets them from the saved context.
	shellEnv := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "HOME="+home, "XDG_CONFIG_HOME="+home,
		"NATS_URL="+natsURL, "NATS_USER="+devNATSUser, "NATS_PASSWORD="+natsPassword,
		"CLICKHOUSE_URL="+chURL, "DATA_DIR="+dir, "LOG_LEVEL=warn", "KEY="+apiKey)

	// The context the README asks for comes first, as a reader saves it once.
	sort.SliceStable(recipes, func(i, j int) bool {
		return strings.HasPrefix(recipes[i].line, "nats context save") && !strings.HasPrefix(recipes[j].line, "nats context save")
	})
	for _, r := range recipes {
		if why, ok := readmeSkipped[r.line]; ok {
			t.Logf("skip %q: %s", r.line, why)
			continue
		}
		line := fill.Replace(r.line)
		if strings.Contains(line, "<seq>") {
			// A replay recipe moves its dead letter to a new sequence: take
			// the newest one each time, as a reader looking at `dlq ls` would.
			testenv.Eventually(t, 30*time.Second, "a dead letter to show", func() bool {
				s, err := js.Stream(testenv.Context(t, 5*time.Second), subjects.DLQStream)
				if err != nil {
					return false
				}
				dlqSeq = s.CachedInfo().State.LastSeq
				return s.CachedInfo().State.Msgs > 0
			})
			line = strings.ReplaceAll(line, "<seq>", fmt.Sprint(dlqSeq))
		}
		if placeholder.MatchString(line) {
			t.Errorf("[%s] %q: a placeholder this test does not fill", r.section, r.line)
			continue
		}
		if readmeRunsUntilStopped.MatchString(line) {
			if out, err := runUntilStopped(ctx, root, line, shellEnv); err != nil {
				t.Errorf("[%s] %q: %v\n%s", r.section, line, err, out)
			} else {
				t.Logf("ok %q (still running after 2s)", line)
			}
			continue
		}
		// What a recipe shows may come from a worker that has not run yet
		// (a tick, an enrichment): try again for a while, as a person would.
		var last string
		var err error
		deadline := time.Now().Add(20 * time.Second)
		for {
			last, err = runRecipe(ctx, root, line, shellEnv)
			if err == nil || time.Now().After(deadline) {
				break
			}
			select { // poll again in a second
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		if err != nil {
			t.Errorf("[%s] %q: %v (for 20s)\n%s", r.section, line, err, last)
		} else {
			t.Logf("ok %q", line)
		}
	}
}

// findNATSCLI finds the nats CLI on PATH or where `make nats-cli` (go
// install) puts it.
func findNATSCLI() string {
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(os.Getenv("GOPATH"), "bin"), filepath.Join(os.Getenv("HOME"), "go", "bin")} {
		if p := filepath.Join(dir, "nats"); dir != "" && dir != "bin" {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
	}
	return ""
}

// runRecipe runs one recipe line in bash and returns its output.
func runRecipe(ctx context.Context, dir, line string, env []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// runUntilStopped starts a recipe that keeps running (a subscription) and
// passes when it is still running after 2 s.
func runUntilStopped(ctx context.Context, dir, line string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	var out testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case err := <-exited:
		return out.String(), fmt.Errorf("exited at once: %v", err)
	case <-t.C:
		cmd.Process.Kill()
		<-exited
		return out.String(), nil
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
