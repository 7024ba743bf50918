package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/chat"
	"jetfleet/internal/events"
	"jetfleet/internal/ids"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	webchat "jetfleet/web/chat"
	"jetfleet/web/chathub"
	"jetfleet/web/ratelimit"
	"jetfleet/web/session"
)

// world is one JetStream with a live event: its organiser, a confirmed
// participant and a registrant who never confirmed.
type world struct {
	t     *testing.T
	nats  *testenv.NATS
	js    jetstream.JetStream
	store *chat.Store
	svc   *events.Service
	ev    events.Event
}

const (
	orgID, orgEmail = "orgorgorgorgorg1", "org@example.com"
	patID, patEmail = "patpatpatpatpat1", "pat@example.com"
	uncID, uncEmail = "uncuncuncuncunc1", "unc@example.com"
	strID, strEmail = "strstrstrstrstr1", "stranger@example.com"
)

func newWorld(t *testing.T) *world {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect(t)
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	svc, err := events.Open(ctx, js, events.Config{BaseURL: "http://site"})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().AddDate(0, 0, 3).Format("2006-01-02")
	e, err := svc.CreateEvent(ctx, orgID, events.EventInput{Title: "Hack", Description: "x", BusinessType: "technology",
		Start: day + "T10:00", End: day + "T18:00", TimeZone: "UTC", Capacity: "10"})
	if err != nil {
		t.Fatal(err)
	}
	if e, err = svc.AddTicketType(ctx, orgID, e.ID, events.TicketInput{Name: "Free", Price: "0", Quantity: "10"}); err != nil {
		t.Fatal(err)
	}
	if e, err = svc.Publish(ctx, orgID, e.ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		name, email string
		confirm     bool
	}{{"Pat", patEmail, true}, {"Unc", uncEmail, false}} {
		r, err := svc.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[0].ID, Name: p.name, Email: p.email, Terms: true, DataSharing: true})
		if err != nil {
			t.Fatal(err)
		}
		if p.confirm {
			if _, err := svc.Confirm(ctx, p.email, e.ID, r.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	store, err := chat.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, nats: n, js: js, store: store, svc: svc, ev: e}
}

type edgeOpts struct {
	now      func() time.Time
	postsMin int
	hub      chathub.Config
	routes   func(*http.ServeMux) // more routes on the edge (a test page)
}

// edge is one jetfleet edge serving the chat: its own NATS connection,
// hub and listener, behind the real session middleware and gate.
type edge struct {
	*httptest.Server
	kill func() // stops the edge as a crash would: sockets cut, hub gone
}

func (w *world) startEdge(o edgeOpts) *edge {
	t := w.t
	_, js := w.nats.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	store, err := chat.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, subjects.SessionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := session.New(kv, session.Config{Secret: []byte(strings.Repeat("k", 32))}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if o.postsMin == 0 {
		o.postsMin = 10_000
	}
	posts, err := ratelimit.NewShared(js, "chat-post-test", o.postsMin, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h, err := webchat.New(webchat.Deps{Events: w.svc, Store: store, Posts: posts, Now: o.now,
		Hub: chathub.New(ctx, js, store, webchat.Render, o.hub, nil)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Routes(mux, sessions.Gate(func(context.Context, string) error { return nil }))
	// Signing in is the site's magic-link flow, tested elsewhere; here a
	// test route starts the same session.
	mux.HandleFunc("GET /test/signin", func(rw http.ResponseWriter, r *http.Request) {
		if _, err := sessions.SignIn(r.Context(), rw, r, r.URL.Query().Get("uid"), r.URL.Query().Get("email")); err != nil {
			http.Error(rw, err.Error(), 500)
		}
	})
	if o.routes != nil {
		o.routes(mux)
	}
	srv := httptest.NewUnstartedServer(sessions.Middleware(mux))
	// Sockets are hijacked connections, which the server no longer
	// tracks: the listener keeps them so a kill can cut them all.
	tl := &trackingListener{Listener: srv.Listener}
	srv.Listener = tl
	srv.Start()
	e := &edge{Server: srv, kill: func() {
		tl.closeAll()
		srv.Close()
		cancel()
	}}
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); cancel() })
	return e
}

type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

// person is a browser with its own cookies; uid "" stays signed out.
type person struct {
	http *http.Client
}

func (w *world) person(e *edge, uid, email string) *person {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if uid != "" {
		resp, err := c.Get(e.URL + "/test/signin?uid=" + uid + "&email=" + email)
		if err != nil || resp.StatusCode != 200 {
			w.t.Fatalf("sign in %s: %v %v", email, err, resp)
		}
		resp.Body.Close()
	}
	return &person{http: c}
}

// dial dials the chat socket from the edge's own origin, with the
// person's cookies (the cookies of any edge of the same site).
func (p *person) dial(e *edge, query string) (*websocket.Conn, *http.Response, error) {
	return p.dialFrom(e, query, e.URL)
}

func (p *person) dialFrom(e *edge, query, origin string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Cookies are per host, not port: every edge here is the same site.
	c, resp, err := websocket.Dial(ctx, strings.Replace(e.URL, "http", "ws", 1)+query, &websocket.DialOptions{
		HTTPClient: p.http, HTTPHeader: http.Header{"Origin": {origin}},
	})
	if c != nil {
		// A frame carries up to 512 messages; browsers take any size.
		c.SetReadLimit(4 << 20)
	}
	return c, resp, err
}

type item struct {
	Seq  uint64 `json:"seq"`
	CID  string `json:"cid"`
	HTML string `json:"html"`
}

type frame struct {
	Type     string `json:"type"`
	Items    []item `json:"items"`
	More     bool   `json:"more"`
	ID       string `json:"id"`
	Seq      uint64 `json:"seq"`
	Error    string `json:"error"`
	ReadOnly bool   `json:"read_only"`
	After    uint64 `json:"after"`
}

// client reads every frame of a socket in the background.
type client struct {
	c      *websocket.Conn
	mu     sync.Mutex
	frames []frame
	done   chan error
}

func open(t *testing.T, c *websocket.Conn) *client {
	t.Helper()
	cl := &client{c: c, done: make(chan error, 1)}
	go func() {
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				cl.done <- err
				return
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				cl.done <- err
				return
			}
			cl.mu.Lock()
			cl.frames = append(cl.frames, f)
			cl.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return cl
}

func (cl *client) send(t *testing.T, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := cl.c.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// messages are the items of every "messages" frame so far.
func (cl *client) messages() (items []item, frames int) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, f := range cl.frames {
		if f.Type == "messages" {
			items = append(items, f.Items...)
			frames++
		}
	}
	return items, frames
}

// await returns the first frame after the first skip frames of type typ.
func (cl *client) await(t *testing.T, typ string, match func(frame) bool) frame {
	t.Helper()
	var got frame
	testenv.EventuallyState(t, 10*time.Second, "a "+typ+" frame", func() (bool, any) {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		for _, f := range cl.frames {
			if f.Type == typ && (match == nil || match(f)) {
				got = f
				return true, nil
			}
		}
		return false, cl.frames
	})
	return got
}

func (cl *client) awaitItems(t *testing.T, n int) []item {
	t.Helper()
	var items []item
	testenv.EventuallyState(t, 15*time.Second, fmt.Sprintf("%d messages", n), func() (bool, any) {
		items, _ = cl.messages()
		return len(items) >= n, len(items)
	})
	return items
}

func (w *world) post(room, text string, n int) []uint64 {
	w.t.Helper()
	var seqs []uint64
	for i := range n {
		m, _, err := w.store.Post(context.Background(), chat.Message{EventID: w.ev.ID, Room: room, UserID: patID, AuthorID: "r", Name: "Pat", Text: fmt.Sprintf("%s %d", text, i)}, ids.New())
		if err != nil {
			w.t.Fatal(err)
		}
		seqs = append(seqs, m.ID)
	}
	return seqs
}

func seqsOf(items []item) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.Seq
	}
	return out
}

func TestChatRefusesEveryoneButMembersBeforeUpgrading(t *testing.T) {
	w := newWorld(t)
	e := w.startEdge(edgeOpts{})
	team := ids.New()
	cases := []struct {
		name, uid, email, query, origin string
		want                            int
	}{
		{"signed out", "", "", "?room=main", "", http.StatusSeeOther},
		{"stranger", strID, strEmail, "?room=main", "", http.StatusForbidden},
		{"unconfirmed registrant", uncID, uncEmail, "?room=main", "", http.StatusForbidden},
		{"participant into another team's room", patID, patEmail, "?room=" + team, "", http.StatusForbidden},
		{"participant from another site", patID, patEmail, "?room=main", "https://evil.example", http.StatusForbidden},
		{"participant, room that cannot exist", patID, patEmail, "?room=a.b", "", http.StatusBadRequest},
		{"participant, main room", patID, patEmail, "?room=main", "", http.StatusSwitchingProtocols},
		{"organiser, any team's room", orgID, orgEmail, "?room=" + team, "", http.StatusSwitchingProtocols},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := w.person(e, c.uid, c.email)
			origin := c.origin
			if origin == "" {
				origin = e.URL
			}
			conn, resp, err := p.dialFrom(e, "/events/"+w.ev.ID+"/live/chat"+c.query, origin)
			if conn != nil {
				conn.CloseNow()
			}
			if resp == nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, c.want, err)
			}
		})
	}
	// An unknown event is not found, for members of other events too.
	p := w.person(e, patID, patEmail)
	if _, resp, _ := p.dial(e, "/events/"+ids.New()+"/live/chat"); resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown event: %v", resp)
	}
}

func TestConnectGetsTheLast20AndScrollingUpLoadsEarlierBlocksOf20(t *testing.T) {
	w := newWorld(t)
	seqs := w.post(events.MainRoom, "main", 45)
	w.post(ids.New(), "other room", 30) // interleaved rooms never leak
	// A window of 25 makes the second block come from the stream, not the
	// edge's memory.
	e := w.startEdge(edgeOpts{hub: chathub.Config{Window: 25}})
	conn, _, err := w.person(e, patID, patEmail).dial(e, "/events/"+w.ev.ID+"/live/chat")
	if err != nil {
		t.Fatal(err)
	}
	cl := open(t, conn)
	if got := seqsOf(cl.awaitItems(t, 20)); fmt.Sprint(got) != fmt.Sprint(seqs[25:]) {
		t.Fatalf("on connect %v, want %v", got, seqs[25:])
	}
	cl.send(t, map[string]any{"type": "earlier", "before": seqs[25]})
	f := cl.await(t, "earlier", nil)
	if fmt.Sprint(seqsOf(f.Items)) != fmt.Sprint(seqs[5:25]) || !f.More {
		t.Fatalf("first earlier block %v more=%v, want %v more=true", seqsOf(f.Items), f.More, seqs[5:25])
	}
	cl.send(t, map[string]any{"type": "earlier", "before": seqs[5]})
	f = cl.await(t, "earlier", func(f frame) bool { return len(f.Items) < 20 })
	if fmt.Sprint(seqsOf(f.Items)) != fmt.Sprint(seqs[:5]) || f.More {
		t.Fatalf("last block %v more=%v, want %v more=false", seqsOf(f.Items), f.More, seqs[:5])
	}
	if items, _ := cl.messages(); len(items) != 20 {
		t.Errorf("%d messages pushed, want 20", len(items))
	}
}

func TestMessagePostedOnOneEdgeReachesSocketsOnAnotherEscaped(t *testing.T) {
	w := newWorld(t)
	a, b := w.startEdge(edgeOpts{}), w.startEdge(edgeOpts{})
	ca, _, err := w.person(a, patID, patEmail).dial(a, "/events/"+w.ev.ID+"/live/chat?room=main")
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := w.person(b, orgID, orgEmail).dial(b, "/events/"+w.ev.ID+"/live/chat?room=main")
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := open(t, ca), open(t, cb)
	pb.await(t, "hello", nil)
	pa.send(t, map[string]any{"type": "post", "id": "c1", "text": `<script>alert("x")</script> & hi`})
	ack := pa.await(t, "ack", nil)
	got := pb.awaitItems(t, 1)[0]
	if got.Seq != ack.Seq || got.CID != "c1" {
		t.Fatalf("edge B got seq %d cid %q, ack said %d", got.Seq, got.CID, ack.Seq)
	}
	if strings.Contains(got.HTML, "<script>") || !strings.Contains(got.HTML, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; hi") || !strings.Contains(got.HTML, "Pat") {
		t.Errorf("rendered message not escaped as expected: %s", got.HTML)
	}
}

func TestKillingAnEdgeMidChatItsClientsResumeOnTheOtherWithoutGapOrRepeat(t *testing.T) {
	w := newWorld(t)
	a, b := w.startEdge(edgeOpts{}), w.startEdge(edgeOpts{})
	pat := w.person(a, patID, patEmail)
	const clients, total = 4, 120
	path := "/events/" + w.ev.ID + "/live/chat?room=main"

	// Each client follows the resume protocol: on a dropped connection it
	// reconnects (to the edge still up) with after=<last seq it has>.
	type follower struct {
		mu    sync.Mutex
		seqs  []uint64
		start uint64 // from the first hello: where it resumes while it has no message
		began bool
	}
	fs := make([]*follower, clients)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var reconnects sync.Map
	var connected sync.WaitGroup
	connected.Add(clients)
	for i := range fs {
		fs[i] = &follower{}
		wg.Add(1)
		var once sync.Once
		go func(f *follower, i int) {
			defer wg.Done()
			target := a
			for ctx.Err() == nil {
				q := path
				f.mu.Lock()
				if n := len(f.seqs); n > 0 {
					q += fmt.Sprintf("&after=%d", f.seqs[n-1])
				} else if f.began {
					q += fmt.Sprintf("&after=%d", f.start)
				}
				f.mu.Unlock()
				conn, _, err := pat.dial(target, q)
				if err != nil {
					target = b // the load balancer sends it to the edge that is up
					continue
				}
				for {
					_, data, err := conn.Read(ctx)
					if err != nil {
						reconnects.Store(i, true)
						target = b
						break
					}
					var fr frame
					json.Unmarshal(data, &fr)
					if fr.Type == "hello" {
						f.mu.Lock()
						if !f.began {
							f.start, f.began = fr.After, true
						}
						f.mu.Unlock()
						once.Do(connected.Done)
					}
					f.mu.Lock()
					f.seqs = append(f.seqs, seqsOf(fr.Items)...)
					f.mu.Unlock()
				}
			}
		}(fs[i], i)
	}
	connected.Wait()
	// The poster is on edge B, posting all along.
	var posted []uint64
	for i := range total {
		if i == total/3 {
			a.kill()
		}
		posted = append(posted, w.post(events.MainRoom, "m", 1)...)
	}
	for i, f := range fs {
		testenv.EventuallyState(t, 20*time.Second, fmt.Sprintf("client %d has every message", i), func() (bool, any) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return len(f.seqs) >= total, f.seqs
		})
	}
	cancel()
	for i, f := range fs {
		f.mu.Lock()
		if fmt.Sprint(f.seqs) != fmt.Sprint(posted) {
			t.Errorf("client %d got %v\nwant %v", i, f.seqs, posted)
		}
		f.mu.Unlock()
		if _, ok := reconnects.Load(i); !ok {
			t.Errorf("client %d never lost its edge", i)
		}
	}
}

func TestPostsAreLimitedInSizeAndRateAcrossEdgesAndStoredOncePerClientID(t *testing.T) {
	w := newWorld(t)
	a, b := w.startEdge(edgeOpts{postsMin: 3}), w.startEdge(edgeOpts{postsMin: 3})
	path := "/events/" + w.ev.ID + "/live/chat"
	ca, _, err := w.person(a, patID, patEmail).dial(a, path)
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := w.person(b, patID, patEmail).dial(b, path)
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := open(t, ca), open(t, cb)

	pa.send(t, map[string]any{"type": "post", "id": "long", "text": strings.Repeat("é", chat.MaxRunes+1)})
	if f := pa.await(t, "error", func(f frame) bool { return f.ID == "long" }); !strings.Contains(f.Error, "at most 2000 characters") {
		t.Errorf("too long: %q", f.Error)
	}
	pa.send(t, map[string]any{"type": "post", "id": "fits", "text": strings.Repeat("é", chat.MaxRunes)})
	pa.await(t, "ack", func(f frame) bool { return f.ID == "fits" })
	// The same client id again (a retry after a drop) is the same message.
	pb.send(t, map[string]any{"type": "post", "id": "fits", "text": strings.Repeat("é", chat.MaxRunes)})
	first := pa.await(t, "ack", func(f frame) bool { return f.ID == "fits" })
	again := pb.await(t, "ack", func(f frame) bool { return f.ID == "fits" })
	if first.Seq != again.Seq {
		t.Errorf("a retried post was stored twice: %d and %d", first.Seq, again.Seq)
	}
	// Three posts a minute in all, whichever edge takes them: "long" was
	// refused before counting; "fits" twice, then one more, then refused.
	pb.send(t, map[string]any{"type": "post", "id": "third", "text": "ok"})
	pb.await(t, "ack", func(f frame) bool { return f.ID == "third" })
	pa.send(t, map[string]any{"type": "post", "id": "fourth", "text": "too many"})
	if f := pa.await(t, "error", func(f frame) bool { return f.ID == "fourth" }); !strings.Contains(f.Error, "too fast") {
		t.Errorf("over the rate: %q", f.Error)
	}
	st, _ := w.js.Stream(context.Background(), subjects.EventsChatStream)
	info, _ := st.Info(context.Background())
	if info.State.Msgs != 2 {
		t.Errorf("%d messages stored, want 2", info.State.Msgs)
	}
}

func TestAfterTheEventEndsTheChatIsReadOnlyHistory(t *testing.T) {
	w := newWorld(t)
	w.post(events.MainRoom, "during", 3)
	after := func() time.Time { return w.ev.End.Add(time.Minute) }
	e := w.startEdge(edgeOpts{now: after})
	conn, _, err := w.person(e, patID, patEmail).dial(e, "/events/"+w.ev.ID+"/live/chat")
	if err != nil {
		t.Fatal(err)
	}
	cl := open(t, conn)
	if !cl.await(t, "hello", nil).ReadOnly {
		t.Error("hello does not say read-only")
	}
	cl.awaitItems(t, 3)
	cl.send(t, map[string]any{"type": "post", "id": "late", "text": "anyone?"})
	if f := cl.await(t, "error", nil); !strings.Contains(f.Error, "read-only") {
		t.Errorf("post after the end: %q", f.Error)
	}
}

func TestABurstOfMessagesArrivesInFewerFramesAllInOrder(t *testing.T) {
	w := newWorld(t)
	e := w.startEdge(edgeOpts{})
	conn, _, err := w.person(e, patID, patEmail).dial(e, "/events/"+w.ev.ID+"/live/chat")
	if err != nil {
		t.Fatal(err)
	}
	cl := open(t, conn)
	cl.await(t, "hello", nil)
	const n = 300
	ctx := testenv.Context(t, 10*time.Second)
	var futures []jetstream.PubAckFuture
	for i := range n {
		data, _ := json.Marshal(chat.Message{EventID: w.ev.ID, Room: "main", UserID: patID, Name: "Pat", Text: fmt.Sprint(i), At: time.Now()})
		f, err := w.js.PublishAsync(subjects.EventsChatSubject(w.ev.ID, "main", patID), data)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	var want []uint64
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			want = append(want, ack.Sequence)
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	items := cl.awaitItems(t, n)
	_, frames := cl.messages()
	if fmt.Sprint(seqsOf(items)) != fmt.Sprint(want) {
		t.Fatalf("not every message in order:\n%v\n%v", seqsOf(items), want)
	}
	if frames > n/4 {
		t.Errorf("%d messages came in %d frames; a burst should be coalesced", n, frames)
	}
	t.Logf("%d messages in %d frames", n, frames)
}

func TestResumingFromOlderThanTheEdgesWindowReadsTheGapFromTheStream(t *testing.T) {
	w := newWorld(t)
	seqs := w.post(events.MainRoom, "m", 60)
	// The edge loads the last 25 (half its window): 6 is well before.
	e := w.startEdge(edgeOpts{hub: chathub.Config{Window: 50}})
	p := w.person(e, patID, patEmail)
	// Another socket keeps the room open, so its window has moved on.
	if c, _, err := p.dial(e, "/events/"+w.ev.ID+"/live/chat"); err != nil {
		t.Fatal(err)
	} else {
		defer c.CloseNow()
	}
	conn, _, err := p.dial(e, fmt.Sprintf("/events/%s/live/chat?after=%d", w.ev.ID, seqs[5]))
	if err != nil {
		t.Fatal(err)
	}
	cl := open(t, conn)
	more := w.post(events.MainRoom, "live", 3)
	want := append(append([]uint64(nil), seqs[6:]...), more...)
	if got := seqsOf(cl.awaitItems(t, len(want))); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resumed with\n%v\nwant\n%v", got, want)
	}
}

// A sequence the stream never reached (a client of a recreated stream)
// is a fresh connect, not a wait for message 1000.
func TestResumingFromBeyondTheStreamStartsFresh(t *testing.T) {
	w := newWorld(t)
	seqs := w.post(events.MainRoom, "m", 5)
	e := w.startEdge(edgeOpts{})
	conn, _, err := w.person(e, patID, patEmail).dial(e, "/events/"+w.ev.ID+"/live/chat?after=1000")
	if err != nil {
		t.Fatal(err)
	}
	cl := open(t, conn)
	if got := seqsOf(cl.awaitItems(t, 5)); fmt.Sprint(got) != fmt.Sprint(seqs) {
		t.Fatalf("got %v, want %v", got, seqs)
	}
}

// Membership is checked when the socket opens, and a socket lives for
// the whole event: a participant who cancels (or a host removed) must
// not keep posting on it. A post checks again once the last check is a
// minute old, and a former member's socket is closed.
func TestAMemberWhoLeavesTheEventStopsPostingOnTheOpenSocket(t *testing.T) {
	w := newWorld(t)
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	e := w.startEdge(edgeOpts{now: clock})
	conn, _, err := w.person(e, patID, patEmail).dial(e, "/events/"+w.ev.ID+"/live/chat")
	if err != nil {
		t.Fatal(err)
	}
	cl := open(t, conn)
	cl.send(t, map[string]any{"type": "post", "id": "before", "text": "hi"})
	cl.await(t, "ack", func(f frame) bool { return f.ID == "before" })
	ctx := testenv.Context(t, 10*time.Second)
	m, _, err := w.svc.Member(ctx, w.ev.ID, patID, patEmail)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.Cancel(ctx, patEmail, w.ev.ID, m.RegistrationID); err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(2 * time.Minute))
	cl.send(t, map[string]any{"type": "post", "id": "after", "text": "still here?"})
	if f := cl.await(t, "error", func(f frame) bool { return f.ID == "after" }); !strings.Contains(f.Error, "no longer") {
		t.Errorf("post after cancelling: %q", f.Error)
	}
	select {
	case err := <-cl.done:
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Errorf("socket ended with %v, want a policy-violation close", err)
		}
	case <-ctx.Done():
		t.Fatal("the former member's socket stays open")
	}
}

// One person may hold MaxSocketsPerUser chat sockets on an edge (tabs,
// devices); the next is closed saying why, and a slot freed by closing
// one is taken again.
func TestChatSocketsPerPersonAreCappedWithAReason(t *testing.T) {
	w := newWorld(t)
	e := w.startEdge(edgeOpts{})
	pat := w.person(e, patID, patEmail)
	path := "/events/" + w.ev.ID + "/live/chat"
	var held []*client
	for range webchat.MaxSocketsPerUser {
		conn, _, err := pat.dial(e, path)
		if err != nil {
			t.Fatal(err)
		}
		cl := open(t, conn)
		cl.await(t, "hello", func(frame) bool { return true })
		held = append(held, cl)
	}
	t.Cleanup(func() {
		for _, cl := range held {
			cl.c.CloseNow()
		}
	})
	conn, _, err := pat.dial(e, path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, 10*time.Second)
	_, _, err = conn.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "too many chat windows") {
		t.Fatalf("socket %d: %v, want a policy-violation close saying too many", webchat.MaxSocketsPerUser+1, err)
	}
	held[0].c.Close(websocket.StatusNormalClosure, "")
	held = held[1:]
	testenv.Eventually(t, 10*time.Second, "a socket in the freed slot", func() bool {
		conn, _, err := pat.dial(e, path)
		if err != nil {
			return false
		}
		_, data, err := conn.Read(ctx)
		if err != nil {
			conn.CloseNow()
			return false
		}
		held = append(held, &client{c: conn})
		return strings.Contains(string(data), `"hello"`)
	})
}
