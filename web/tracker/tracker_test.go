package tracker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/blob"
	"jetfleet/internal/sealed"
	"jetfleet/internal/testenv"
	"jetfleet/internal/tracking"
	"jetfleet/internal/youtube"
	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
	"jetfleet/web/session"
	"jetfleet/web/tracker"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) { testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c }) }

var quiet = slog.New(slog.DiscardHandler)

type site struct {
	t      *testing.T
	url    string
	store  *tracking.Store
	yt     *youtubetest.Server
	conn   driver.Conn
	ctx    context.Context
	tokens *sealed.Box // TOKEN_KEY of the edges
	js     jetstream.JetStream
	// edge starts another edge on its own NATS connection to the same
	// server and returns its URL.
	edge func() string
}

var (
	chanA = youtubetest.ChannelID(1)
	chanB = youtubetest.ChannelID(2)
)

// newSite starts the Tracker's pages; opts change their Deps.
func newSite(t *testing.T, opts ...func(*tracker.Deps)) *site {
	t.Helper()
	ctx := testenv.Context(t, 60*time.Second)
	nats := testenv.StartNATS(t)
	_, js := nats.Connect(t)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), quiet); err != nil {
		t.Fatal(err)
	}
	yts := youtubetest.New(youtubetest.Options{})
	yts.Start()
	t.Cleanup(yts.Close)
	yts.AddChannel(chanA, "@alphas", "Alpha Channel")
	yts.AddVideo(chanA, "alphavideo1", "Alpha video", time.Now().Add(-time.Hour), 500)
	yts.AddChannel(chanB, "@betas", "Beta Channel")
	yts.AddVideo(chanB, "betavideo01", "Beta video", time.Now().Add(-time.Hour), 700)
	client, _ := youtube.New(youtube.Config{BaseURL: yts.URL(), ThumbnailURL: yts.URL(), RetryMin: time.Millisecond})
	signer, _ := blob.NewURLSigner([]byte(strings.Repeat("s", 32)))
	var store *tracking.Store
	tokens, err := sealed.New([]byte(strings.Repeat("t", 32)))
	if err != nil {
		t.Fatal(err)
	}
	edge := func(js jetstream.JetStream) string {
		kv, _ := js.KeyValue(ctx, subjects.SessionsBucket)
		sessions, err := session.New(kv, session.Config{Secret: []byte(strings.Repeat("k", 32)), TTL: time.Hour}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		st, err := tracking.Open(ctx, js, tracking.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if store == nil {
			store = st
		}
		blobs, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, "http://edge.test")
		if err != nil {
			t.Fatal(err)
		}

		mux := http.NewServeMux()
		deps := tracker.Deps{
			JS: js, Store: st, YouTube: client, ClickHouse: conn, Blobs: blobs, Log: quiet,
			Premium: func(_ context.Context, uid string) (bool, error) { return uid == "premium", nil },
			Tokens:  tokens,
		}
		for _, o := range opts {
			o(&deps)
		}
		h, err := tracker.New(deps)
		if err != nil {
			t.Fatal(err)
		}
		h.Routes(mux, sessions.Gate(func(context.Context, string) error { return nil }))
		// Test-only helpers: sign in as ?user=, show the form token.
		mux.HandleFunc("GET /test/signin", func(w http.ResponseWriter, r *http.Request) {
			u := r.URL.Query().Get("user")
			if _, err := sessions.SignIn(r.Context(), w, r, u, u+"@example.com"); err != nil {
				http.Error(w, err.Error(), 500)
			}
		})
		mux.HandleFunc("GET /test/csrf", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, session.From(r.Context()).CSRFToken())
		})
		// As the site mounts them: /api/ outside sessions and CSRF.
		api := http.NewServeMux()
		h.APIRoutes(api)
		root := http.NewServeMux()
		root.Handle("/api/", api)
		root.Handle("/", sessions.Middleware(mux))
		srv := httptest.NewServer(root)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	first := edge(js)
	second := func() string {
		_, js := nats.Connect(t)
		return edge(js)
	}
	return &site{t: t, url: first, store: store, yt: yts, conn: conn, ctx: ctx, edge: second, tokens: tokens, js: js}
}

type browser struct {
	s *site
	c *http.Client
}

// as returns a browser signed in as user ("" for a visitor).
func (s *site) as(user string) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{s: s, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if user != "" {
		b.get("/test/signin?user=" + user)
	}
	return b
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.s.t.Helper()
	resp, err := b.c.Get(b.s.url + path)
	if err != nil {
		b.s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.s.t.Helper()
	_, token, _ := b.get("/test/csrf")
	form.Set("csrf_token", token)
	req, _ := http.NewRequest("POST", b.s.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		b.s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestVisitorsAreSentToSignIn(t *testing.T) {
	s := newSite(t)
	b := s.as("")
	for _, p := range []string{"/tracker", "/tracker/videos/alphavideo1", "/tracker/channels/" + chanA} {
		code, _, h := b.get(p)
		if code != http.StatusSeeOther || h.Get("Location") != "/signin?next="+url.QueryEscape(p) {
			t.Errorf("GET %s: %d %q", p, code, h.Get("Location"))
		}
	}
	if code, _, h := b.post("/tracker/track", url.Values{"ref": {"@alphas"}}); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/signin") {
		t.Errorf("POST /tracker/track: %d %q", code, h.Get("Location"))
	}
}

func TestTrackingAChannelByHandleShowsItOnTheDashboard(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	code, _, h := alice.post("/tracker/track", url.Values{"ref": {"https://www.youtube.com/@alphas"}})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/tracker/channels/"+chanA) {
		t.Fatalf("track: %d %q", code, h.Get("Location"))
	}
	code, body, _ := alice.get("/tracker")
	if code != 200 || !strings.Contains(body, "Alpha Channel") || !strings.Contains(body, "1 of 3 channels") {
		t.Fatalf("dashboard %d:\n%s", code, body)
	}
	if live, _ := s.store.LiveChannels(s.ctx); len(live) != 1 || live[0] != chanA {
		t.Fatalf("live channels = %v", live)
	}
	if code, _, _ := alice.post("/tracker/untrack", url.Values{"kind": {"channel"}, "id": {chanA}}); code != http.StatusSeeOther {
		t.Fatalf("untrack: %d", code)
	}
	if _, body, _ := alice.get("/tracker"); strings.Contains(body, "Alpha Channel") {
		t.Fatal("untracked channel still on the dashboard")
	}
	if code, _, _ := alice.post("/tracker/untrack", url.Values{"kind": {"playlist"}, "id": {"x"}}); code != http.StatusBadRequest {
		t.Fatalf("untrack of an unknown kind: %d, want 400", code)
	}
}

func TestTrackingExplainsBadInput(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	cases := []struct {
		ref  string
		code int
		says string
	}{
		{"hello world", http.StatusUnprocessableEntity, "is not a YouTube channel or video"},
		{"https://vimeo.com/1234", http.StatusUnprocessableEntity, "is not a YouTube channel or video"},
		{"https://youtu.be/zzzzzzzzzzz", http.StatusUnprocessableEntity, "YouTube has no channel or video"},
		{"@nobodyhere", http.StatusUnprocessableEntity, "YouTube has no channel or video"},
	}
	for _, c := range cases {
		code, body, _ := alice.post("/tracker/track", url.Values{"ref": {c.ref}})
		if code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("track %q: %d, want %d saying %q", c.ref, code, c.code, c.says)
		}
	}
}

func TestFreePlanLimitIsExplained(t *testing.T) {
	s := newSite(t)
	for i := range 3 {
		id := youtubetest.ChannelID(10 + i)
		s.yt.AddChannel(id, "", "Extra")
		if code, _, _ := s.as("alice").post("/tracker/track", url.Values{"ref": {id}}); code != http.StatusSeeOther {
			t.Fatalf("channel %d: %d", i, code)
		}
	}
	code, body, _ := s.as("alice").post("/tracker/track", url.Values{"ref": {chanA}})
	if code != http.StatusForbidden || !strings.Contains(body, "free plan tracks up to 3 channels") {
		t.Fatalf("fourth channel: %d\n%s", code, body)
	}
	if code, _, _ := s.as("premium").post("/tracker/track", url.Values{"ref": {chanA}}); code != http.StatusSeeOther {
		t.Fatalf("premium user: %d", code)
	}
}

// Every read path shows a user only their channels, their individually
// tracked videos and the videos of their channels.
func TestUsersSeeOnlyWhatTheyTrack(t *testing.T) {
	s := newSite(t)
	alice, bob := s.as("alice"), s.as("bob")
	if code, _, _ := alice.post("/tracker/track", url.Values{"ref": {"@alphas"}}); code != http.StatusSeeOther {
		t.Fatal("alice could not track her channel")
	}
	// The channel check found its upload.
	s.store.SeeVideo(s.ctx, subjects.TrackerVideo{ID: "alphavideo1", ChannelID: chanA, Title: "Alpha video"}, time.Now())
	if code, _, _ := bob.post("/tracker/track", url.Values{"ref": {"https://www.youtube.com/watch?v=betavideo01"}}); code != http.StatusSeeOther {
		t.Fatal("bob could not track his video")
	}
	cases := []struct {
		who  *browser
		name string
		path string
		code int
	}{
		{alice, "alice", "/tracker/channels/" + chanA, 200},
		{bob, "bob", "/tracker/channels/" + chanA, 404},
		{alice, "alice", "/tracker/channels/" + chanB, 404},
		{alice, "alice", "/tracker/videos/alphavideo1", 200},
		{bob, "bob", "/tracker/videos/alphavideo1", 403},
		{bob, "bob", "/tracker/videos/betavideo01", 200},
		{alice, "alice", "/tracker/videos/betavideo01", 403},
		{alice, "alice", "/tracker/videos/nosuchvideo", 403},
		{alice, "alice", "/tracker/channels/not.a.key", 404},
	}
	for _, c := range cases {
		code, body, _ := c.who.get(c.path)
		if code != c.code {
			t.Errorf("%s GET %s: %d, want %d", c.name, c.path, code, c.code)
		}
		if code != 200 && (strings.Contains(body, "Alpha video") || strings.Contains(body, "Beta video")) {
			t.Errorf("%s GET %s: refused page leaks a title", c.name, c.path)
		}
	}
	_, aliceDash, _ := alice.get("/tracker")
	_, bobDash, _ := bob.get("/tracker")
	if !strings.Contains(aliceDash, "Alpha video") || strings.Contains(aliceDash, "Beta video") {
		t.Errorf("alice's dashboard shows the wrong videos")
	}
	if !strings.Contains(bobDash, "Beta video") || strings.Contains(bobDash, "Alpha") {
		t.Errorf("bob's dashboard shows the wrong videos")
	}
}

func TestVideoPageDrawsTheCurveWithChangeMarkersAndBeforeAfter(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	alice.post("/tracker/track", url.Values{"ref": {"betavideo01"}})
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	write := func(table string, cols []string, rows ...[]any) {
		w, err := analytics.NewBatchWriter(s.conn, analytics.WriterConfig{Table: table, Columns: cols}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			w.Append(s.ctx, r...)
		}
		if err := w.Flush(s.ctx); err != nil {
			t.Fatal(err)
		}
	}
	sc := []string{"video_id", "channel_id", "sampled_at", "views", "likes", "title", "thumb_hash"}
	write("video_samples", sc,
		[]any{"betavideo01", chanB, t0, uint64(100), uint64(0), "Old", "aaaa"},
		[]any{"betavideo01", chanB, t0.Add(time.Hour), uint64(250), uint64(0), "Old", "aaaa"},
		[]any{"betavideo01", chanB, t0.Add(2 * time.Hour), uint64(900), uint64(0), "New title", "bbbb"})
	write("video_changes", []string{"video_id", "changed_at", "kind", "before", "after"},
		[]any{"betavideo01", t0.Add(2 * time.Hour), "thumbnail", "aaaa", "bbbb"},
		[]any{"betavideo01", t0.Add(2 * time.Hour), "title", "Old", "New title"})

	code, body, _ := alice.get("/tracker/videos/betavideo01")
	if code != 200 {
		t.Fatalf("video page: %d\n%s", code, body)
	}
	for _, want := range []string{"<polyline", "marker-thumbnail", "marker-title", "3 samples",
		tracking.ThumbKey("betavideo01", "aaaa", true), tracking.ThumbKey("betavideo01", "bbbb", true), "New title"} {
		if !strings.Contains(body, want) {
			t.Errorf("video page lacks %q", want)
		}
	}
}

func TestTrackingWhileYouTubeRefusesUsSaysSoNotDoesNotExist(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	for _, c := range []struct{ refuse, ref, says string }{
		{youtubetest.RefuseBotCheck, "https://youtu.be/alphavideo1", "not a bot"},
		{youtubetest.RefuseRateLimit, "@alphas", "we ask too often"},
		{youtubetest.RefuseConsent, chanB, "cookie consent page"},
	} {
		s.yt.Refuse(c.refuse)
		code, body, _ := alice.post("/tracker/track", url.Values{"ref": {c.ref}})
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "YouTube is refusing us") || !strings.Contains(body, c.says) || strings.Contains(body, "has no channel or video") {
			t.Errorf("track %q while YouTube refuses (%s): %d\n%s", c.ref, c.refuse, code, body)
		}
	}
}

func TestTrackingAHiddenVideoNamesItsState(t *testing.T) {
	s := newSite(t)
	s.yt.SetState("alphavideo1", youtubetest.StatePrivate)
	code, body, _ := s.as("alice").post("/tracker/track", url.Values{"ref": {"alphavideo1"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "YouTube says this video is private") || strings.Contains(body, "has no channel or video") {
		t.Fatalf("track a private video: %d\n%s", code, body)
	}
}

func TestTrackingAChannelDuringAFeedOutage(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	s.yt.FailFeeds(true)
	// The channel page answers for the feed.
	if code, _, h := alice.post("/tracker/track", url.Values{"ref": {chanA}}); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/tracker/channels/"+chanA) {
		t.Fatalf("track during a feed outage: %d %q", code, h.Get("Location"))
	}
	// Nothing answers: say so, do not claim it does not exist.
	s.yt.SetFailing(true)
	code, body, _ := alice.post("/tracker/track", url.Values{"ref": {chanB}})
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "YouTube did not answer") || strings.Contains(body, "has no channel or video") {
		t.Fatalf("track when YouTube answers nothing: %d\n%s", code, body)
	}
}

func TestTrackingByUnicodeHandleAndLegacyLink(t *testing.T) {
	s := newSite(t)
	cafe := youtubetest.ChannelID(5)
	s.yt.AddChannel(cafe, "@café", "Café")
	s.yt.AddLegacyURL(chanB, "/c/BetaChannel")
	for ref, want := range map[string]string{"@café": cafe, "https://www.youtube.com/c/BetaChannel": chanB} {
		code, _, h := s.as("premium").post("/tracker/track", url.Values{"ref": {ref}})
		if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/tracker/channels/"+want) {
			t.Errorf("track %q: %d %q", ref, code, h.Get("Location"))
		}
	}
}

func TestPagesShowRefusalsVideoStatesFailedChecksAndLikes(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	alice.post("/tracker/track", url.Values{"ref": {"@alphas"}})
	alice.post("/tracker/track", url.Values{"ref": {"betavideo01"}})
	if err := s.store.UpdateVideo(s.ctx, "betavideo01", func(v *subjects.TrackerVideo) {
		v.Likes, v.State, v.StateReason = 4321, "private", "This video is private"
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.UpdateChannel(s.ctx, chanA, func(c *subjects.TrackerChannel) {
		c.Failed, c.Failure = time.Now(), "YouTube's feed answered 404"
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.NoteRefusal(s.ctx, string(youtube.RefusedBotCheck), "Sign in to confirm you’re not a bot"); err != nil {
		t.Fatal(err)
	}
	_, dash, _ := alice.get("/tracker")
	for _, want := range []string{"YouTube is refusing us: it asks us to prove we are not a bot", "YouTube&#39;s feed answered 404", `class="badge state"`} {
		if !strings.Contains(dash, want) {
			t.Errorf("dashboard lacks %q:\n%s", want, dash)
		}
	}
	_, page, _ := alice.get("/tracker/videos/betavideo01")
	for _, want := range []string{"<strong>4,321</strong> likes", "YouTube says this video is <strong>private</strong>", "YouTube is refusing us"} {
		if !strings.Contains(page, want) {
			t.Errorf("video page lacks %q:\n%s", want, page)
		}
	}
}

// A link can carry any ?ok= text: the pages show only the messages of
// their own redirects, named by code, so nobody can put their words (or
// markup) on our pages through a link.
func TestPagesShowOnlyTheirOwnNoticesNotTextFromTheLink(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	code, _, h := alice.post("/tracker/track", url.Values{"ref": {chanA}})
	loc := h.Get("Location")
	if code != http.StatusSeeOther || loc != "/tracker/channels/"+chanA+"?ok=channel" {
		t.Fatalf("track: %d %q, want a redirect with the code of its message", code, loc)
	}
	if _, body, _ := alice.get(loc); !strings.Contains(body, "Now tracking this channel") {
		t.Errorf("%s does not show the notice:\n%s", loc, body)
	}
	if code, _, h := alice.post("/tracker/track", url.Values{"ref": {"alphavideo1"}}); code != http.StatusSeeOther || h.Get("Location") != "/tracker/videos/alphavideo1?ok=video" {
		t.Fatalf("track video: %d %q", code, h.Get("Location"))
	}
	for _, text := range []string{"<script>alert(1)</script>", "Your account is suspended: call +1 555 0100", "channel-x"} {
		for _, page := range []string{"/tracker", "/tracker/channels/" + chanA, "/tracker/videos/alphavideo1"} {
			code, body, _ := alice.get(page + "?ok=" + url.QueryEscape(text))
			if code != http.StatusOK {
				t.Fatalf("GET %s: %d", page, code)
			}
			if strings.Contains(body, "alert(1)") || strings.Contains(body, "suspended") || strings.Contains(body, `class="note"`) {
				t.Errorf("GET %s?ok=%q shows the link's text or a notice:\n%s", page, text, body)
			}
		}
	}
}

// Twenty tracks posted at once by a free account leave it with exactly its
// 3 channels: the others are refused (the limit, or the per-user rate).
func TestParallelTrackRequestsOnAFreeAccountTrackExactlyTheLimit(t *testing.T) {
	s := newSite(t)
	for i := range 20 {
		s.yt.AddChannel(youtubetest.ChannelID(100+i), fmt.Sprintf("@par%d", i), fmt.Sprintf("Parallel %d", i))
	}
	alice := s.as("alice")
	_, token, _ := alice.get("/test/csrf")
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
		start = make(chan struct{})
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"ref": {youtubetest.ChannelID(100 + i)}, "csrf_token": {token}}
			req, _ := http.NewRequest("POST", s.url+"/tracker/track", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			<-start
			resp, err := alice.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	chans, err := s.store.UserChannels(s.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 3 || codes[http.StatusSeeOther] != 3 {
		t.Fatalf("20 parallel tracks: %d channels tracked, answers by status %v; want exactly 3 tracked (3 × 303)", len(chans), codes)
	}
	if _, body, _ := alice.get("/tracker"); !strings.Contains(body, "3 of 3 channels") {
		t.Errorf("dashboard does not count 3 of 3 channels:\n%s", body)
	}
}

func TestTrackLimitIsSharedByEveryEdge(t *testing.T) {
	s := newSite(t)
	alice := s.as("alice")
	// Ten attempts on the first edge spend alice's allowance; refused
	// input counts too, as it still costs a look at YouTube's rules.
	for i := range 10 {
		if code, body, _ := alice.post("/tracker/track", url.Values{"ref": {"not a channel"}}); code != http.StatusUnprocessableEntity {
			t.Fatalf("attempt %d: %d, want 422\n%s", i+1, code, body)
		}
	}
	other := *s
	other.url = s.edge()
	onSecond := &browser{s: &other, c: alice.c}
	code, body, _ := onSecond.post("/tracker/track", url.Values{"ref": {"@alphas"}})
	if code != http.StatusTooManyRequests || !strings.Contains(body, "very quickly") {
		t.Fatalf("11th attempt, on another edge: %d, want 429 saying to wait", code)
	}
}
