package web_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// liveEventFixture is a published event with one free ticket, a confirmed
// participant, an invited host and a stranger, all signed in.
type liveEventFixture struct {
	e                                *eventsEdge
	id, regID                        string
	org, participant, host, stranger *visitor
}

var ticketChoice = regexp.MustCompile(`name="ticket" value="([^"]+)"`)

func newLiveEvent(t *testing.T) *liveEventFixture {
	t.Helper()
	e := startEventsEdge(t)
	f := &liveEventFixture{e: e, org: newVisitor(t, e.URL), participant: newVisitor(t, e.URL), host: newVisitor(t, e.URL), stranger: newVisitor(t, e.URL)}
	signIn(t, e, f.org, "org@example.com")
	f.id = createEvent(t, f.org, "Live Hack Night")
	addTicket(t, f.org, f.id, "Community", "0")
	page := "/events/organise/" + f.id
	if resp := f.org.post(page, page+"/publish", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("publish = %d", resp.StatusCode)
	}
	signIn(t, e, f.participant, "pat@example.com")
	_, body := f.participant.get("/events/e/" + f.id)
	resp := f.participant.post("/events/e/"+f.id, "/events/e/"+f.id+"/register", url.Values{
		"ticket": {ticketChoice.FindStringSubmatch(body)[1]}, "name": {"Pat"}, "email": {"pat@example.com"}, "terms": {"yes"}, "data_sharing": {"yes"},
	})
	m := regexp.MustCompile(`/r/([A-Za-z0-9_-]{16})`).FindStringSubmatch(resp.Header.Get("Location"))
	if m == nil {
		t.Fatalf("one-step registration → %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	f.regID = m[1]
	if resp := f.org.post(page, page+"/hosts", url.Values{"host_email": {"Hana@Example.com"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("invite host = %d", resp.StatusCode)
	}
	signIn(t, e, f.host, "hana@example.com")
	signIn(t, e, f.stranger, "eve@example.com")
	return f
}

// reschedule moves the event (organiser's edit form) to start at start
// with the stream at streamURL.
func (f *liveEventFixture) reschedule(t *testing.T, start time.Time, streamURL string) {
	t.Helper()
	page := "/events/organise/" + f.id
	resp := f.org.post(page, page+"/edit", url.Values{
		"title": {"Live Hack Night"}, "description": {"Hack on Go"}, "business_type": {"technology"},
		"start": {start.UTC().Format("2006-01-02T15:04")}, "end": {start.Add(3 * time.Hour).UTC().Format("2006-01-02T15:04")},
		"time_zone": {"UTC"}, "capacity": {"50"}, "stream_url": {streamURL},
	})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reschedule = %d", resp.StatusCode)
	}
}

var dataCSRF = regexp.MustCompile(`data-csrf="([^"]+)"`)

// heartbeat posts the app page's heartbeat as its script does: the CSRF
// token from the page in a header.
func (f *liveEventFixture) heartbeat(t *testing.T, v *visitor, first bool) *http.Response {
	t.Helper()
	_, page := v.get("/events/" + f.id + "/live")
	token := ""
	if m := dataCSRF.FindStringSubmatch(page); m != nil {
		token = m[1]
	} else if m := csrfInput.FindStringSubmatch(page); m != nil {
		token = m[1] // the refusal page has the sign-out form's
	}
	body := ""
	if first {
		body = "first=1"
	}
	req, _ := http.NewRequest(http.MethodPost, f.e.URL+"/events/"+f.id+"/live/heartbeat", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", token)
	resp, err := v.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// engagements returns every message on the engagement stream.
func engagements(t *testing.T, js jetstream.JetStream) []subjects.EventsEngagement {
	t.Helper()
	ctx := testenv.Context(t, 5*time.Second)
	s, err := js.Stream(ctx, subjects.EventsEngagementStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []subjects.EventsEngagement
	for seq := uint64(1); ; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			info, _ := s.Info(ctx)
			if seq > info.State.LastSeq {
				return out
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev subjects.EventsEngagement
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
}

func TestLiveAppAdmitsParticipantsAndHostsAndTellsOthersWhatToDo(t *testing.T) {
	f := newLiveEvent(t)
	app := "/events/" + f.id + "/live"

	anon := newVisitor(t, f.e.URL)
	resp, err := anon.c.Get(f.e.URL + app)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/signin?next="+url.QueryEscape(app) {
		t.Fatalf("signed-out visitor: %d → %q; want the sign-in page coming back to the app", resp.StatusCode, loc)
	}

	code, body := f.participant.get(app)
	if code != http.StatusOK || !strings.Contains(body, `data-phase="lobby"`) || !strings.Contains(body, `id="countdown"`) || !strings.Contains(body, `id="team-link"`) {
		t.Fatalf("participant before the start: %d, want the lobby with a countdown and the team link:\n%s", code, body)
	}
	if strings.Contains(body, `id="admin-link"`) {
		t.Error("a participant is offered the admin dashboard")
	}
	code, body = f.host.get(app)
	if code != http.StatusOK || !strings.Contains(body, `id="admin-link"`) || !strings.Contains(body, `id="live-role">host<`) {
		t.Fatalf("invited host: %d, want the app as an admin", code)
	}
	if code, body := f.org.get(app); code != http.StatusOK || !strings.Contains(body, `id="live-role">organiser<`) {
		t.Fatalf("organiser: %d", code)
	}
	code, body = f.stranger.get(app)
	if code != http.StatusForbidden || !strings.Contains(body, "eve@example.com") || !strings.Contains(body, "Sign in with the address you registered") ||
		!strings.Contains(body, `href="/events/e/`+f.id+`"`) {
		t.Fatalf("stranger: %d, want 403 saying what to do:\n%s", code, body)
	}
	for _, p := range []string{"/events/" + f.id + "/other", "/events/nosuchevent0000/live", "/events/bad.id/live"} {
		if code, _ := f.participant.get(p); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}

	// Links to the app: the registration page, my events, the organiser's page.
	if _, body := f.participant.get("/events/e/" + f.id + "/r/" + f.regID); !strings.Contains(body, `id="join-live" href="`+app+`"`) {
		t.Error("the registration page does not link the live app")
	}
	if _, body := f.participant.get("/events/mine"); !strings.Contains(body, `href="`+app+`"`) {
		t.Error("my events does not link the live app")
	}
	if _, body := f.org.get("/events/organise/" + f.id); !strings.Contains(body, `id="live-app-link" href="`+app+`"`) || !strings.Contains(body, "hana@example.com") {
		t.Error("the organiser's page does not link the live app or list the host")
	}

	testenv.Eventually(t, 5*time.Second, "the host's events list the event they host", func() bool {
		_, body := f.host.get("/events/mine")
		return strings.Contains(body, `id="hosting"`) && strings.Contains(body, `href="`+app+`"`)
	})

	// The organiser removes the host: from then on, refused.
	page := "/events/organise/" + f.id
	if resp := f.org.post(page, page+"/hosts/remove", url.Values{"host_email": {"hana@example.com"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove host = %d", resp.StatusCode)
	}
	if code, _ := f.host.get(app); code != http.StatusForbidden {
		t.Errorf("removed host: %d, want 403", code)
	}
}

func TestHostInvitationValidatesTheAddressAndMailsTheAppLink(t *testing.T) {
	f := newLiveEvent(t)
	page := "/events/organise/" + f.id
	// Other mail came after it (sign-in links): look through the stream.
	ctx := testenv.Context(t, 5*time.Second)
	s, _ := f.e.js.Stream(ctx, subjects.MailStream)
	found := false
	info, _ := s.Info(ctx)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var mail subjects.Mail
		json.Unmarshal(m.Data, &mail)
		if mail.To == "hana@example.com" && strings.Contains(mail.Subject, "host") {
			found = strings.Contains(mail.Text, f.e.URL+"/events/"+f.id+"/live")
		}
	}
	if !found {
		t.Fatal("no host invitation with the app link was mailed to hana@example.com")
	}
	_, form := f.org.get(page)
	token := csrfInput.FindStringSubmatch(form)[1]
	resp, err := f.org.c.PostForm(f.e.URL+page+"/hosts", url.Values{"csrf_token": {token}, "host_email": {"not an address"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), `data-field="host_email"`) || !strings.Contains(string(b), `value="not an address"`) {
		t.Fatalf("invalid host address: %d; want 422 with the message by the field and the typed value kept", resp.StatusCode)
	}
	// Without the CSRF token nothing changes.
	resp, err = f.org.c.PostForm(f.e.URL+page+"/hosts", url.Values{"host_email": {"x@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("host form without CSRF token = %d, want 403", resp.StatusCode)
	}
	// Another organiser cannot add hosts to this event.
	if resp := f.stranger.post("/events/organise", page+"/hosts", url.Values{"host_email": {"eve@example.com"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("stranger adding a host = %d, want 404", resp.StatusCode)
	}
}

func TestHeartbeatsCountOncePerMemberAndMinuteOnlyDuringTheEvent(t *testing.T) {
	f := newLiveEvent(t)
	if resp := f.heartbeat(t, f.participant, true); resp.StatusCode != http.StatusConflict {
		t.Fatalf("heartbeat before the start = %d, want 409", resp.StatusCode)
	}
	f.reschedule(t, time.Now().Add(-5*time.Minute), "https://cdn.example.com/live/index.m3u8")

	app := "/events/" + f.id + "/live"
	resp, err := f.participant.c.Get(f.e.URL + app)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if !strings.Contains(body, `data-phase="live"`) || !strings.Contains(body, `data-src="https://cdn.example.com/live/index.m3u8"`) || !strings.Contains(body, "hls.light.min.js") {
		t.Fatalf("participant during the event: want the stage with the player:\n%s", body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !regexp.MustCompile(`connect-src [^;]*https://cdn\.example\.com`).MatchString(csp) || !regexp.MustCompile(`media-src [^;]*https://cdn\.example\.com`).MatchString(csp) {
		t.Errorf("the app's policy does not let the player load the stream: %q", csp)
	}
	r2, _ := f.participant.c.Get(f.e.URL + "/events/mine")
	r2.Body.Close()
	if strings.Contains(r2.Header.Get("Content-Security-Policy"), "cdn.example.com") {
		t.Error("another page's policy names the stream origin")
	}

	start := time.Now()
	for i, first := range []bool{true, false, true} { // two tabs: the second loads too
		if resp := f.heartbeat(t, f.participant, first); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("heartbeat %d = %d, want 204", i, resp.StatusCode)
		}
	}
	if resp := f.heartbeat(t, f.host, true); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("host heartbeat = %d", resp.StatusCode)
	}
	minutes := 1
	if time.Now().Truncate(time.Minute) != start.Truncate(time.Minute) {
		minutes = 2 // the beats straddled a minute
	}
	got := map[string]int{}
	ids := map[string]bool{}
	for _, ev := range engagements(t, f.e.js) {
		if ev.EventID != f.id {
			t.Errorf("engagement for event %q", ev.EventID)
		}
		if ev.UserID == "" {
			t.Errorf("%s %s names no account", ev.Kind, ev.ID)
		}
		member, _, _ := strings.Cut(ev.ID, ".")
		got[ev.Kind+" "+member]++
		key := ev.Kind + " " + ev.ID
		if ids[key] {
			t.Errorf("%s stored twice", key)
		}
		ids[key] = true
		if ev.Kind == subjects.EngagementHeartbeat && ev.ID != subjects.HeartbeatID(member, ev.At) {
			t.Errorf("heartbeat id %q for %s at %s", ev.ID, member, ev.At)
		}
	}
	if got["connected "+f.regID] != 1 || got["heartbeat "+f.regID] < 1 || got["heartbeat "+f.regID] > minutes {
		t.Errorf("participant engagement %v; want one first connect and one heartbeat per minute (%d minute(s))", got, minutes)
	}
	for k, n := range got {
		if strings.HasPrefix(k, "connected admin:") && n == 1 {
			return
		}
	}
	t.Errorf("host engagement %v; want a first connect as admin:<user>", got)
}

func TestAfterTheEndTheAppShowsTheHistoryAndTakesNoHeartbeats(t *testing.T) {
	f := newLiveEvent(t)
	f.reschedule(t, time.Now().Add(-4*time.Hour), "https://cdn.example.com/live/index.m3u8")
	code, body := f.participant.get("/events/" + f.id + "/live")
	if code != http.StatusOK || !strings.Contains(body, `data-phase="ended"`) || !strings.Contains(body, `id="ended"`) ||
		!strings.Contains(body, `class="chat-readonly"`) || strings.Contains(body, "live-video") {
		t.Fatalf("participant after the end: %d; want the read-only history without the player:\n%s", code, body)
	}
	if resp := f.heartbeat(t, f.participant, true); resp.StatusCode != http.StatusConflict {
		t.Errorf("heartbeat after the end = %d, want 409", resp.StatusCode)
	}
}

func TestHeartbeatsAreRefusedToStrangersWithoutTokenAndPastTheLimit(t *testing.T) {
	f := newLiveEvent(t)
	f.reschedule(t, time.Now().Add(-5*time.Minute), "")
	if resp := f.heartbeat(t, f.stranger, true); resp.StatusCode != http.StatusForbidden {
		t.Errorf("stranger heartbeat = %d, want 403", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, f.e.URL+"/events/"+f.id+"/live/heartbeat", nil)
	resp, err := f.participant.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("heartbeat without the CSRF token = %d, want 403", resp.StatusCode)
	}
	if _, body := f.participant.get("/events/" + f.id + "/live"); !strings.Contains(body, `id="no-stream"`) {
		t.Error("without a stream address the stage does not say so")
	}
	limited := false
	for i := 0; i < 25 && !limited; i++ {
		resp := f.heartbeat(t, f.participant, false)
		switch resp.StatusCode {
		case http.StatusNoContent:
		case http.StatusTooManyRequests:
			limited = resp.Header.Get("Retry-After") != ""
			if !limited {
				t.Fatal("429 without Retry-After")
			}
		default:
			t.Fatalf("heartbeat %d = %d", i, resp.StatusCode)
		}
	}
	if !limited {
		t.Error("25 heartbeats in a row were all accepted; want 429 past the limit")
	}
}

// Heartbeats remember who a member is for a minute, but never past a
// change of the event: a host removed is refused at their next beat.
func TestRemovedHostsHeartbeatIsRefusedAtOnce(t *testing.T) {
	f := newLiveEvent(t)
	f.reschedule(t, time.Now().Add(-5*time.Minute), "")
	if resp := f.heartbeat(t, f.host, true); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("host heartbeat = %d", resp.StatusCode)
	}
	page := "/events/organise/" + f.id
	if resp := f.org.post(page, page+"/hosts/remove", url.Values{"host_email": {"hana@example.com"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove host = %d", resp.StatusCode)
	}
	if resp := f.heartbeat(t, f.host, false); resp.StatusCode != http.StatusForbidden {
		t.Errorf("removed host's heartbeat = %d, want 403", resp.StatusCode)
	}
	if resp := f.heartbeat(t, f.participant, false); resp.StatusCode != http.StatusNoContent {
		t.Errorf("participant's heartbeat = %d, want 204", resp.StatusCode)
	}
}
