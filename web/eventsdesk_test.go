package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/blob"
	"jetfleet/internal/events"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web"
	"jetfleet/web/eventsdesk"
	"jetfleet/web/session"
)

// deskEdges are two edges on one JetStream, with blobs in its object
// store: what any edge writes, every edge sees.
type deskEdges struct {
	a, b *eventsEdge
	// ch is the edges' ClickHouse database, where tests write engagement
	// rows as the events-engagement role would.
	ch driver.Conn
}

func startDeskEdges(t *testing.T) *deskEdges {
	t.Helper()
	srv := testenv.StartNATS(t)
	nc, js := srv.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	signer, err := blob.NewURLSigner([]byte(strings.Repeat("b", 32)))
	if err != nil {
		t.Fatal(err)
	}
	// One ClickHouse database with the schema, for the live figures.
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	edge := func() *eventsEdge {
		hs := httptest.NewUnstartedServer(nil)
		base := "http://" + hs.Listener.Addr().String()
		store, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, base)
		if err != nil {
			t.Fatal(err)
		}
		h, err := web.New(ctx, web.Config{SessionSecret: []byte(strings.Repeat("s", 32)), BaseURL: base, EventsMemberRecheck: 200 * time.Millisecond, EventsDashboardEvery: 300 * time.Millisecond}, web.Deps{
			NATS: nc, JS: js, ClickHouse: conn, Gatherer: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			BlobStore: store, Blobs: blob.Handler(store, signer),
		})
		if err != nil {
			t.Fatal(err)
		}
		hs.Config.Handler = h
		hs.Start()
		t.Cleanup(hs.Close)
		return &eventsEdge{Server: hs, nc: nc, js: js}
	}
	return &deskEdges{a: edge(), b: edge(), ch: conn}
}

// liveDesk is an event on edge a with its organiser and participants
// signed in (and registered, confirmed) there.
type liveDesk struct {
	*deskEdges
	id    string
	org   *visitor
	parts []*visitor
	// regs are the parts' registration pages, /events/e/{id}/r/{rid}.
	regs []string
}

func startLiveDesk(t *testing.T, participants ...string) *liveDesk {
	t.Helper()
	d := &liveDesk{deskEdges: startDeskEdges(t)}
	d.org = newVisitor(t, d.a.URL)
	signIn(t, d.a, d.org, "org@example.com")
	var ticket string
	d.id, ticket = publishFreeEvent(t, d.a, d.org, "Hack Day")
	for _, email := range participants {
		p := newVisitor(t, d.a.URL)
		signIn(t, d.a, p, email)
		name := strings.ToUpper(email[:1]) + email[1:strings.Index(email, "@")]
		resp := p.post("/events/e/"+d.id, "/events/e/"+d.id+"/register", url.Values{"ticket": {ticket}, "name": {name}, "email": {email}, "terms": {"yes"}, "data_sharing": {"yes"}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("register %s = %d", email, resp.StatusCode)
		}
		d.parts = append(d.parts, p)
		d.regs = append(d.regs, strings.SplitN(resp.Header.Get("Location"), "?", 2)[0])
	}
	return d
}

func (d *liveDesk) admin() string { return "/events/" + d.id + "/live/admin" }
func (d *liveDesk) team() string  { return "/events/" + d.id + "/live/team" }

// splitAndPublish splits into n teams and publishes them, through the
// admin page's forms.
func (d *liveDesk) splitAndPublish(t *testing.T, n int) {
	t.Helper()
	if resp := d.org.post(d.admin(), d.admin()+"/teams/split", url.Values{"n": {strconv.Itoa(n)}, "by": {"count"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("split = %d", resp.StatusCode)
	}
	if resp := d.org.post(d.admin(), d.admin()+"/teams/publish", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("publish = %d", resp.StatusCode)
	}
}

var teamLinkPattern = regexp.MustCompile(`href="(/events/[^/]+/live/teams/[^"]+)"`)

// dialAdmin opens v's admin socket of event id on edge base.
func dialAdmin(t *testing.T, v *visitor, base, id string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx := testenv.Context(t, 5*time.Second)
	u := "ws" + strings.TrimPrefix(base, "http") + "/events/" + id + "/live/admin/ws"
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: v.c, HTTPHeader: http.Header{"Origin": {base}}})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// readUntil reads frames of c until a help-queue frame contains want,
// failing at the deadline with the last frame seen; it returns that
// frame's HTML.
func readUntil(t *testing.T, c *websocket.Conn, within time.Duration, want string) string {
	t.Helper()
	return readFrame(t, c, within, eventsdesk.HelpQueueID, want)
}

// readFrame reads frames of c until one for element id contains want.
func readFrame(t *testing.T, c *websocket.Conn, within time.Duration, id, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	last := ""
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("no %s frame with %q within %s (%v); last frame:\n%s", id, want, within, err, last)
		}
		var f eventsdesk.Frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame is not JSON: %v: %s", err, b)
		}
		last = f.HTML
		if f.ID == id && strings.Contains(f.HTML, want) {
			return f.HTML
		}
	}
}

// dialTeam opens v's team socket of event id on edge base.
func dialTeam(t *testing.T, v *visitor, base, id string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx := testenv.Context(t, 5*time.Second)
	u := "ws" + strings.TrimPrefix(base, "http") + "/events/" + id + "/live/team/ws"
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: v.c, HTTPHeader: http.Header{"Origin": {base}}})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// A participant asks for help through one edge; the admin, whose socket
// is on the other edge, sees the flag, claims it and sees the claim.
func TestHelpFlagReachesAnAdminSocketOnAnotherEdge(t *testing.T) {
	d := startLiveDesk(t, "ann@example.com", "bob@example.com")
	d.splitAndPublish(t, 1)
	admin := newVisitor(t, d.b.URL)
	admin.c.Jar = d.org.c.Jar // the same browser, routed to the other edge
	c, _, err := dialAdmin(t, admin, d.b.URL, d.id)
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, c, 5*time.Second, "No team has asked for help")
	// The team page of bob, on the other edge, follows the request.
	bobSocket := newVisitor(t, d.b.URL)
	bobSocket.c.Jar = d.parts[1].c.Jar
	tc, _, err := dialTeam(t, bobSocket, d.b.URL, d.id)
	if err != nil {
		t.Fatal(err)
	}
	readFrame(t, tc, 5*time.Second, eventsdesk.TeamHelpID, `id="ask-help"`)

	start := time.Now()
	if resp := d.parts[0].post(d.team(), d.team()+"/help", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ask for help = %d", resp.StatusCode)
	}
	frame := readUntil(t, c, 5*time.Second, `data-state="open"`)
	t.Logf("help flag reached the admin socket on the other edge %s after the request returned", time.Since(start))
	if !strings.Contains(frame, "Team 1") || !strings.Contains(frame, "waiting") {
		t.Errorf("flag frame names no team or wait:\n%s", frame)
	}
	readFrame(t, tc, 5*time.Second, eventsdesk.TeamHelpID, `data-state="open"`)
	fid := regexp.MustCompile(`data-flag="([^"]+)"`).FindStringSubmatch(frame)[1]
	// Asking again while the flag is open raises nothing new.
	d.parts[1].post(d.team(), d.team()+"/help", url.Values{})
	if resp := d.org.post(d.admin(), d.admin()+"/help/"+fid+"/claim", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("claim = %d", resp.StatusCode)
	}
	frame = readUntil(t, c, 5*time.Second, "claimed by you")
	readFrame(t, tc, 5*time.Second, eventsdesk.TeamHelpID, "A host is on the way")
	if strings.Count(frame, "data-flag=") != 1 {
		t.Errorf("want one flag for the team, got:\n%s", frame)
	}
	if _, body := d.parts[0].get(d.team()); !strings.Contains(body, "A host is on the way") {
		t.Errorf("team page does not say help is coming:\n%s", body)
	}
	if resp := d.org.post(d.admin(), d.admin()+"/help/"+fid+"/resolve", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("resolve = %d", resp.StatusCode)
	}
	readUntil(t, c, 5*time.Second, "resolved after")
	readFrame(t, tc, 5*time.Second, eventsdesk.TeamHelpID, `id="ask-help"`)
}

func TestDeskPagesAndSocketRefuseWhoeverIsNotAllowed(t *testing.T) {
	d := startLiveDesk(t, "ann@example.com", "bob@example.com")
	d.splitAndPublish(t, 2)
	_, adminPage := d.org.get(d.admin())
	if !strings.Contains(adminPage, `id="live-figures"`) || !strings.Contains(adminPage, "connected now") {
		t.Errorf("admin page shows no live figures")
	}
	teams := teamLinkPattern.FindAllStringSubmatch(adminPage, -1)
	if len(teams) < 2 {
		t.Fatalf("admin page links %d teams, want 2:\n%s", len(teams), adminPage)
	}
	stranger := newVisitor(t, d.a.URL)
	signIn(t, d.a, stranger, "eve@example.com")
	anon := newVisitor(t, d.a.URL)
	ann := d.parts[0]
	_, annTeam := ann.get(d.team())
	other := teams[0][1]
	if strings.Contains(annTeam, strings.TrimPrefix(teams[0][1], "/events/"+d.id+"/live/teams/")) {
		other = teams[1][1]
	}
	// Ann's team has a file: only its members and the admins get it.
	if resp, _ := multipartSubmission(t, ann, d.team(), map[string]string{"title": "Ann's"}, "notes.txt", []byte("our notes")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ann's submission = %d", resp.StatusCode)
	}
	annFile := regexp.MustCompile(`href="(/events/[^"]+/file)"`).FindStringSubmatch(func() string { _, p := ann.get(d.team()); return p }())
	if annFile == nil {
		t.Fatal("no file link on ann's team page")
	}
	bob := d.parts[1]
	for _, c := range []struct {
		who  string
		v    *visitor
		path string
		want int
	}{
		{"participant of another team, a team's file", bob, annFile[1], http.StatusForbidden},
		{"stranger, a team's file", stranger, annFile[1], http.StatusForbidden},
		{"signed out, a team's file", anon, annFile[1], http.StatusSeeOther},
		{"admin, a team's file", d.org, annFile[1], http.StatusOK},
		{"member, own team's file", ann, annFile[1], http.StatusOK},
		{"participant, admin page", ann, d.admin(), http.StatusForbidden},
		{"stranger, admin page", stranger, d.admin(), http.StatusForbidden},
		{"stranger, team page", stranger, d.team(), http.StatusForbidden},
		{"participant, other team", ann, other, http.StatusForbidden},
		{"participant, other team's file", ann, other + "/file", http.StatusForbidden},
		{"signed out, team page", anon, d.team(), http.StatusSeeOther},
		{"admin, any team", d.org, other, http.StatusOK},
		{"participant, own team", ann, d.team(), http.StatusOK},
	} {
		if code, _ := c.v.get(c.path); code != c.want {
			t.Errorf("%s: GET %s = %d, want %d", c.who, c.path, code, c.want)
		}
	}
	// The team page embeds its team room's chat; the chat socket lets the
	// members and admins into that room and nobody else into it.
	own := regexp.MustCompile(`live/chat\?room=([A-Za-z0-9_-]{16})`).FindStringSubmatch(annTeam)
	if own == nil {
		t.Fatalf("ann's team page embeds no team chat:\n%s", annTeam)
	}
	otherID := other[strings.LastIndex(other, "/")+1:]
	for _, c := range []struct {
		who  string
		v    *visitor
		room string
		want int
	}{
		{"member, own team room", ann, own[1], http.StatusSwitchingProtocols},
		{"member, other team's room", ann, otherID, http.StatusForbidden},
		{"stranger, a team room", stranger, own[1], http.StatusForbidden},
		{"admin, any team room", d.org, otherID, http.StatusSwitchingProtocols},
	} {
		ctx := testenv.Context(t, 5*time.Second)
		u := "ws" + strings.TrimPrefix(d.a.URL, "http") + "/events/" + d.id + "/live/chat?room=" + c.room
		conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.v.c, HTTPHeader: http.Header{"Origin": {d.a.URL}}})
		if err == nil {
			conn.CloseNow()
		}
		if resp == nil || resp.StatusCode != c.want {
			t.Errorf("%s: chat socket %v (%v), want %d", c.who, resp, err, c.want)
		}
	}
	// Forms of the admin page, posted by a participant with a valid token.
	for _, action := range []string{"/teams/split", "/teams/publish", "/help/AAAAAAAAAAAAAAAA/claim"} {
		if resp := ann.post(d.team(), d.admin()+action, url.Values{"n": {"2"}, "by": {"size"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("participant POST %s = %d, want 403", action, resp.StatusCode)
		}
	}
	for _, v := range []*visitor{ann, stranger} {
		if _, resp, err := dialAdmin(t, v, d.a.URL, d.id); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("admin socket for a non-admin: %v, %+v; want 403", err, resp)
		}
	}
	if _, resp, err := dialTeam(t, stranger, d.a.URL, d.id); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("team socket for a stranger: %v; want 403", err)
	}
	// Another site's page cannot open the admin's socket with their cookie.
	evil := newVisitor(t, d.a.URL)
	evil.c.Jar = d.org.c.Jar
	ctx := testenv.Context(t, 5*time.Second)
	u := "ws" + strings.TrimPrefix(d.a.URL, "http") + d.admin() + "/ws"
	if _, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: evil.c, HTTPHeader: http.Header{"Origin": {"https://evil.example"}}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin admin socket: %v; want 403", err)
	}
}

// mailsTo returns the team mails queued to address to.
func mailsTo(t *testing.T, js jetstream.JetStream, to string) []subjects.Mail {
	t.Helper()
	ctx := testenv.Context(t, 5*time.Second)
	st, err := js.Stream(ctx, subjects.MailStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []subjects.Mail
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var m subjects.Mail
		if json.Unmarshal(raw.Data, &m) == nil && strings.EqualFold(m.To, to) && strings.HasPrefix(m.ID, "events-team") {
			out = append(out, m)
		}
	}
	return out
}

var csrfValue = regexp.MustCompile(`value="[A-Za-z0-9_-]{43}"`)

// The lost-link page answers the same for a team member's address and for
// an unknown one, mails only the member, and limits asks per address.
func TestLostLinkAnswersTheSameAndIsLimitedPerAddress(t *testing.T) {
	d := startLiveDesk(t, "ann@example.com")
	d.splitAndPublish(t, 1)
	path := "/events/" + d.id + "/live/lost-link"
	if n := len(mailsTo(t, d.a.js, "ann@example.com")); n != 1 {
		t.Fatalf("%d team mails to ann after publishing, want 1", n)
	}
	answer := func(v *visitor, email string) (int, string) {
		_, page := v.get(path)
		token := csrfInput.FindStringSubmatch(page)[1]
		resp, err := v.c.PostForm(v.base+path, url.Values{session.FormField: {token}, "email": {email}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, csrfValue.ReplaceAllString(string(b), "")
	}
	v := newVisitor(t, d.b.URL) // not signed in, on the other edge
	codeKnown, known := answer(v, "Ann <ANN@example.com>")
	codeUnknown, unknown := answer(v, "nobody@example.com")
	if codeKnown != http.StatusOK || codeUnknown != http.StatusOK || known != unknown {
		t.Fatalf("answers differ: %d vs %d, same body %v", codeKnown, codeUnknown, known == unknown)
	}
	if !strings.Contains(known, "If that address is registered") {
		t.Errorf("the answer does not say a link may be on its way:\n%s", known)
	}
	mails := mailsTo(t, d.a.js, "ann@example.com")
	if len(mails) != 2 || !strings.Contains(mails[1].Text, d.team()) {
		t.Fatalf("mails to ann: %+v; want the team mail and one resend with the team link", mails)
	}
	if len(mailsTo(t, d.a.js, "nobody@example.com")) != 0 {
		t.Error("an unknown address got mail")
	}
	// Three asks per address an hour, counted on every edge: the fourth is
	// refused whichever edge and however the address is written.
	answer(newVisitor(t, d.a.URL), "ann@example.com")
	answer(newVisitor(t, d.b.URL), "ann@Example.com")
	if code, body := answer(newVisitor(t, d.a.URL), "ann@example.com"); code != http.StatusTooManyRequests || !strings.Contains(body, "Too many") {
		t.Errorf("fourth ask for one address = %d, want 429 with a message", code)
	}
	// Ten asks per client address in ten minutes, whatever the addresses
	// asked for: this client has made five.
	var codes []int
	for i := range 6 {
		code, _ := answer(newVisitor(t, d.b.URL), "someone"+strconv.Itoa(i)+"@example.com")
		codes = append(codes, code)
	}
	if want := []int{200, 200, 200, 200, 200, 429}; !slices.Equal(codes, want) {
		t.Errorf("asks 6–11 from one client = %v, want %v", codes, want)
	}
}

// multipartSubmission posts the submission form of v's team with a file.
func multipartSubmission(t *testing.T, v *visitor, teamPage string, fields map[string]string, fileName string, file []byte) (*http.Response, string) {
	t.Helper()
	_, page := v.get(teamPage)
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form on %s", teamPage)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField(session.FormField, m[1])
	for k, val := range fields {
		mw.WriteField(k, val)
	}
	if file != nil {
		fw, _ := mw.CreateFormFile("file", fileName)
		fw.Write(file)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, v.base+teamPage+"/submit", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", v.base)
	resp, err := v.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestTeamSubmitsWithAFileAndRefusedFilesAreExplained(t *testing.T) {
	d := startLiveDesk(t, "ann@example.com", "bob@example.com")
	d.splitAndPublish(t, 1)
	ann, bob := d.parts[0], d.parts[1]
	// A page a browser would run is refused, next to the file field.
	resp, body := multipartSubmission(t, ann, d.team(), map[string]string{"title": "Bot"}, "x.html", []byte("<!DOCTYPE html><script>alert(1)</script>"))
	if resp.StatusCode != http.StatusUnprocessableEntity || !regexp.MustCompile(`data-field="file">This kind of file`).MatchString(body) {
		t.Fatalf("html file = %d; want 422 with a message on the file:\n%s", resp.StatusCode, body)
	}
	// Too large: refused before anything reads it.
	big := bytes.Repeat([]byte("a"), events.DefaultMaxSubmissionFile+(2<<20))
	resp, body = multipartSubmission(t, ann, d.team(), map[string]string{"title": "Bot"}, "big.txt", big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "up to 20.0 MB") {
		t.Fatalf("large file = %d %q; want 413 naming the limit", resp.StatusCode, body)
	}
	pdf := []byte("%PDF-1.4 our slides")
	resp, _ = multipartSubmission(t, ann, d.team(), map[string]string{"title": "Bot", "link": "https://example.com/bot"}, "C:\\Users\\ann\\Bot slides – v1.pdf", pdf)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("submission = %d", resp.StatusCode)
	}
	resp, _ = multipartSubmission(t, bob, d.team(), map[string]string{"title": "Bot, improved"}, "", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("update = %d", resp.StatusCode)
	}
	_, page := bob.get(d.team())
	for _, want := range []string{"Bot, improved", "version 2", "Bot slides – v1.pdf", "By Ann, Bob"} {
		if !strings.Contains(page, want) {
			t.Errorf("team page lacks %q", want)
		}
	}
	// The file is served by the edge to the team (and the admins), as an
	// attachment under the name it was uploaded with, never a bearer URL.
	fileLink := regexp.MustCompile(`href="(/events/[^"]+/file)"`).FindStringSubmatch(page)
	if fileLink == nil {
		t.Fatal("no file link on the team page")
	}
	for _, v := range []*visitor{bob, d.org} {
		resp, got := download(t, v, fileLink[1])
		if resp.StatusCode != http.StatusOK || got != string(pdf) {
			t.Fatalf("file download = %d %q", resp.StatusCode, got)
		}
		h := resp.Header
		if cd := h.Get("Content-Disposition"); cd != `attachment; filename="Bot slides _ v1.pdf"; filename*=UTF-8''Bot%20slides%20%E2%80%93%20v1.pdf` {
			t.Errorf("Content-Disposition %q", cd)
		}
		if h.Get("Content-Type") != "application/pdf" || h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Cache-Control"), "no-store") {
			t.Errorf("file headers %v", h)
		}
	}
	// Admins see every submission on their page.
	if _, admin := d.org.get(d.admin()); !strings.Contains(admin, `id="submissions"`) || !strings.Contains(admin, "Bot, improved") || !strings.Contains(admin, "By Ann, Bob") {
		t.Error("admin page does not list the submission with its contributors")
	}
	// Each participant may submit 30 times an hour (on every edge): ann
	// has made two attempts that reached the handler.
	ann.base = d.b.URL
	var last int
	for range eventsdesk.SubmissionsPerHour - 1 {
		resp, body = multipartSubmission(t, ann, d.team(), map[string]string{"title": "Bot"}, "", nil)
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests || !strings.Contains(body, "times this hour") {
		t.Errorf("submission 31 = %d, want 429 with a message", last)
	}
}

// A submission's body (up to the file limit) is spooled to disk before
// the CSRF check and the sign-in gate can run, and anyone can have an
// anonymous session with its CSRF token: so the edge reads no upload of a
// browser that is not signed in, and says why.
func TestSubmissionFromABrowserNotSignedInIsRefusedUnread(t *testing.T) {
	d := startLiveDesk(t, "ann@example.com")
	d.splitAndPublish(t, 1)
	anon := newVisitor(t, d.b.URL)
	_, page := anon.get("/signin") // an anonymous session and its CSRF token
	m := csrfInput.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF field on /signin")
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField(session.FormField, m[1])
	fw, _ := mw.CreateFormFile("file", "big.txt")
	fw.Write(bytes.Repeat([]byte("a"), 4<<20))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, anon.base+d.team()+"/submit", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", anon.base)
	resp, err := anon.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "Sign in") {
		t.Fatalf("anonymous upload = %d %q, want 403 asking to sign in", resp.StatusCode, b)
	}
}

// Any account can sign in, so being signed in is not enough to have an
// upload read: a stranger to the event is refused before the edge reads
// a byte of the body. The body here is a pipe nothing is ever written to,
// so an edge that read it would never answer.
func TestSubmissionFromASignedInNonMemberIsRefusedUnread(t *testing.T) {
	d := startLiveDesk(t, "ann@example.com")
	d.splitAndPublish(t, 1)
	stranger := newVisitor(t, d.b.URL)
	signIn(t, d.a, stranger, "eve@example.com")
	_, page := stranger.get("/events")
	if csrfInput.FindStringSubmatch(page) == nil {
		t.Fatal("no CSRF field on /events")
	}
	pr, pw := io.Pipe()
	// An edge that waits for the body gets a cut-short one after a while
	// (and answers 400 or 413), so this test fails rather than hangs.
	stop := time.AfterFunc(15*time.Second, func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	t.Cleanup(func() { stop.Stop(); pw.Close() })
	req, _ := http.NewRequest(http.MethodPost, stranger.base+d.team()+"/submit", pr)
	req.ContentLength = 4 << 20
	req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	req.Header.Set("Origin", stranger.base)
	resp, err := stranger.c.Do(req)
	if err != nil {
		t.Fatalf("a stranger's upload got no answer while its body was unsent: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "teams submit") {
		t.Fatalf("stranger's upload = %d %q, want 403 saying only teams submit", resp.StatusCode, b)
	}
}

// awaitClose reads c until it closes and returns the close error.
func awaitClose(t *testing.T, c *websocket.Conn, within time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return err
		}
	}
}

// A desk socket lives for the whole event: a host removed since it
// opened, and a participant who cancelled since, are cut off (the socket
// closes saying why) instead of receiving the help queue, the figures and
// the team's updates until they leave the page.
func TestDeskSocketsCloseForAHostRemovedOrAParticipantWhoCancelled(t *testing.T) {
	d := startLiveDesk(t, "ann@example.com", "bob@example.com")
	d.splitAndPublish(t, 1)
	org := "/events/organise/" + d.id
	if resp := d.org.post(org, org+"/hosts", url.Values{"host_email": {"hana@example.com"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add host = %d", resp.StatusCode)
	}
	hana := newVisitor(t, d.a.URL)
	signIn(t, d.a, hana, "hana@example.com")
	hostSock, _, err := dialAdmin(t, hana, d.b.URL, d.id)
	if err != nil {
		t.Fatalf("host's admin socket: %v", err)
	}
	annSock, _, err := dialTeam(t, d.parts[0], d.b.URL, d.id)
	if err != nil {
		t.Fatalf("ann's team socket: %v", err)
	}
	bobSock, _, err := dialTeam(t, d.parts[1], d.b.URL, d.id)
	if err != nil {
		t.Fatalf("bob's team socket: %v", err)
	}
	if resp := d.org.post(org, org+"/hosts/remove", url.Values{"host_email": {"hana@example.com"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove host = %d", resp.StatusCode)
	}
	if resp := d.parts[0].post(d.regs[0], d.regs[0]+"/cancel", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ann cancels = %d", resp.StatusCode)
	}
	for _, c := range []struct {
		who    string
		c      *websocket.Conn
		reason string
	}{{"removed host", hostSock, "no longer a host"}, {"cancelled participant", annSock, "no longer in this team"}} {
		err := awaitClose(t, c.c, 10*time.Second)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, c.reason) {
			t.Errorf("%s's socket ended with %v, want a policy-violation close saying %q", c.who, err, c.reason)
		}
	}
	// Bob is still in the team: his socket stays open through rechecks.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := bobSock.Read(ctx); websocket.CloseStatus(err) != -1 {
		t.Errorf("bob's socket closed: %v", err)
	}
}

// engage writes engagement rows of event eid to d's ClickHouse, as the
// events-engagement role does.
func (d *deskEdges) engage(t *testing.T, rows ...subjects.EventsEngagement) {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	w, err := analytics.NewBatchWriter(d.ch, analytics.WriterConfig{Table: analytics.EngagementTable, Columns: analytics.EngagementColumns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Append(ctx, analytics.EngagementRow(r)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// rid is the registration id of participant i.
func (d *liveDesk) rid(i int) string { return d.regs[i][strings.LastIndex(d.regs[i], "/")+1:] }

// messages are n message rows of author (an engagement id) in event eid.
func messages(eid, uid, author string, n int) []subjects.EventsEngagement {
	var out []subjects.EventsEngagement
	for i := range n {
		out = append(out, subjects.EventsEngagement{Kind: subjects.EngagementMessage, EventID: eid, ID: author + strconv.Itoa(i),
			UserID: uid, Room: events.MainRoom, Ref: author, At: time.Now().UTC().Add(-time.Minute)})
	}
	return out
}

// The dashboard's top contributors are named as they registered, the
// host (who chats most) is not among them, and a participant whose
// registration is gone shows a pseudonym.
func TestTopContributorsShowTheirRegisteredNames(t *testing.T) {
	d := startLiveDesk(t, "ann@example.com", "bob@example.com")
	gone := "ZZZZZZZZZZZZZZZZ"
	var rows []subjects.EventsEngagement
	rows = append(rows, messages(d.id, "acct-ann", d.rid(0), 3)...)
	rows = append(rows, messages(d.id, "acct-bob", d.rid(1), 1)...)
	rows = append(rows, messages(d.id, "acct-org", "admin:acct-org", 5)...)
	rows = append(rows, messages(d.id, "acct-gone", gone, 2)...)
	d.engage(t, rows...)
	_, page := d.org.get(d.admin())
	m := regexp.MustCompile(`(?s)<ol id="top-contributors">(.*?)</ol>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("admin page lists no top contributors:\n%s", page)
	}
	items := regexp.MustCompile(`<li>([^<]*)</li>`).FindAllStringSubmatch(m[1], -1)
	var got []string
	for _, it := range items {
		got = append(got, it[1])
	}
	want := []string{"Ann: 3 messages", events.Pseudonym(gone) + ": 2 messages", "Bob: 1 messages"}
	if !slices.Equal(got, want) {
		t.Errorf("top contributors %q, want %q", got, want)
	}
}

// download GETs path as v, returning the response (body read) and body.
func download(t *testing.T, v *visitor, path string) (*http.Response, string) {
	t.Helper()
	resp, err := v.c.Get(v.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The admin page's teams table is live: over the admin's socket it shows
// how many members are connected and the team chat's recent messages as
// they happen, a help request at once, and a new submission, without a
// reload.
func TestTeamsTableFollowsActivityHelpAndSubmissionsOverTheAdminSocket(t *testing.T) {
	d := startLiveDesk(t, "ann@example.com", "bob@example.com", "cy@example.com")
	d.splitAndPublish(t, 1)
	_, page := d.org.get(d.admin())
	if !strings.Contains(page, `id="`+eventsdesk.TeamsID+`"`) {
		t.Fatalf("admin page has no live teams table:\n%s", page)
	}
	link := teamLinkPattern.FindStringSubmatch(page)
	if link == nil {
		t.Fatalf("admin page links no team:\n%s", page)
	}
	tid := link[1][strings.LastIndex(link[1], "/")+1:]
	c, _, err := dialAdmin(t, d.org, d.b.URL, d.id)
	if err != nil {
		t.Fatal(err)
	}
	row := func(html string) string {
		m := regexp.MustCompile(`(?s)<tr data-team="` + tid + `">.*?</tr>`).FindString(html)
		if m == "" {
			t.Fatalf("teams frame has no row of team %s:\n%s", tid, html)
		}
		return m
	}
	first := row(readFrame(t, c, 5*time.Second, eventsdesk.TeamsID, "Team 1"))
	for _, want := range []string{"Ann", "Bob", "Cy", "data-connected>0<", "data-messages>0<", "none"} {
		if !strings.Contains(first, want) {
			t.Errorf("first teams frame lacks %q:\n%s", want, first)
		}
	}
	// Ann and Bob open the app; four messages in the team chat, one in
	// the main chat (not the team's).
	now := time.Now().UTC()
	rows := []subjects.EventsEngagement{
		{Kind: subjects.EngagementHeartbeat, EventID: d.id, ID: subjects.HeartbeatID(d.rid(0), now), UserID: "acct-ann", At: now},
		{Kind: subjects.EngagementHeartbeat, EventID: d.id, ID: subjects.HeartbeatID(d.rid(1), now), UserID: "acct-bob", At: now},
	}
	for i, m := range messages(d.id, "acct-ann", d.rid(0), 5) {
		if i > 0 {
			m.Room = tid
		}
		rows = append(rows, m)
	}
	d.engage(t, rows...)
	readFrame(t, c, 5*time.Second, eventsdesk.TeamsID, "data-connected>2<")
	active := row(readFrame(t, c, 5*time.Second, eventsdesk.TeamsID, "data-messages>4<"))
	if !strings.Contains(active, "data-connected>2<") {
		t.Errorf("team row lost its connected members:\n%s", active)
	}
	// A help request shows at once (with the queue), a submission on the
	// next refresh.
	if resp := d.parts[0].post(d.team(), d.team()+"/help", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ask for help = %d", resp.StatusCode)
	}
	readFrame(t, c, 5*time.Second, eventsdesk.TeamsID, `data-help="open"`)
	if resp, _ := multipartSubmission(t, d.parts[1], d.team(), map[string]string{"title": "Desk Bot"}, "", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("submission = %d", resp.StatusCode)
	}
	readFrame(t, c, 5*time.Second, eventsdesk.TeamsID, "Desk Bot")
}
