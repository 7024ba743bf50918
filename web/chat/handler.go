// Package chat serves the live event app's chat: the WebSocket endpoint
// GET /events/{id}/live/chat?room=<room>&after=<seq> (authorised before the
// upgrade: the event's members, a team room only for its team and the
// admins), posting over the socket (size limit, a per-person rate shared by
// every edge, read-only after the event's end), the message rendering
// (templ, escaped, once per message and edge) and the ChatPanel component
// the live pages embed. Fan-out is web/chathub's; storage internal/chat's.
package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"jetfleet/internal/chat"
	"jetfleet/internal/events"
	"jetfleet/internal/ids"
	"jetfleet/web/chathub"
	"jetfleet/web/ratelimit"
	"jetfleet/web/session"
)

// Deps are what the chat works with.
type Deps struct {
	Events *events.Service
	Store  *chat.Store
	Hub    *chathub.Hub
	// Posts limits each person's posts per event, on every edge together.
	Posts *ratelimit.Shared
	// Now is the clock (the read-only rule); default time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Handler serves the chat socket.
type Handler struct {
	d Deps
	// mu guards open: each user's open sockets on this edge.
	mu   sync.Mutex
	open map[string]int
}

// MaxSocketsPerUser bounds one person's open chat sockets on one edge:
// enough for several tabs and devices, not for a script holding
// thousands of sockets (each costs a goroutine pair and a hub slot).
const MaxSocketsPerUser = 10

// tooManySockets is the close reason of a socket over MaxSocketsPerUser
// (the page shows it while it retries).
var tooManySockets = "too many chat windows open (" + strconv.Itoa(MaxSocketsPerUser) + " at most); close one"

// claim counts a socket of uid, false when uid has MaxSocketsPerUser open.
func (h *Handler) claim(uid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open[uid] >= MaxSocketsPerUser {
		return false
	}
	h.open[uid]++
	return true
}

func (h *Handler) release(uid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open[uid]--; h.open[uid] <= 0 {
		delete(h.open, uid)
	}
}

// New returns the handler.
func New(d Deps) (*Handler, error) {
	if d.Events == nil || d.Store == nil || d.Hub == nil || d.Posts == nil {
		return nil, errors.New("chat: Events, Store, Hub and Posts are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Handler{d: d, open: map[string]int{}}, nil
}

// PostsPerMinute is each person's post limit in one event: the seed
// expects 2 a minute; this leaves room for a lively exchange, not a flood.
const PostsPerMinute = 30

// Routes mounts the socket behind the sign-in gate.
func (h *Handler) Routes(mux *http.ServeMux, signedIn func(http.Handler) http.Handler) {
	mux.Handle("GET /events/{id}/live/chat", signedIn(http.HandlerFunc(h.socket)))
}

// Render renders a message into its frame item:
// {"seq":…,"cid":…,"html":"<li …>"}.
func Render(m chat.Message) []byte {
	var buf bytes.Buffer
	if err := message(m).Render(context.Background(), &buf); err != nil {
		buf.Reset()
	}
	b, _ := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		CID  string `json:"cid,omitempty"`
		HTML string `json:"html"`
	}{m.ID, m.ClientID, buf.String()})
	return b
}

func (h *Handler) socket(w http.ResponseWriter, r *http.Request) {
	eid, room := r.PathValue("id"), r.URL.Query().Get("room")
	if room == "" {
		room = events.MainRoom
	}
	if !ids.Valid(eid) {
		http.Error(w, "There is no such event.", http.StatusNotFound)
		return
	}
	if room != events.MainRoom && !ids.Valid(room) {
		http.Error(w, "There is no such chat room.", http.StatusBadRequest)
		return
	}
	var after *uint64
	if a := r.URL.Query().Get("after"); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			http.Error(w, "after must be a message sequence number.", http.StatusBadRequest)
			return
		}
		after = &n
	}
	// A page of another site must not open a socket with this site's
	// cookie (cross-site WebSocket hijacking): WebSockets are outside the
	// CORS rules, so the Origin is the check.
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || !strings.EqualFold(u.Host, r.Host) {
			http.Error(w, "Chat connections from other sites are refused.", http.StatusForbidden)
			return
		}
	}
	u, _ := session.UserFrom(r.Context())
	m, ev, err := h.d.Events.Member(r.Context(), eid, u.ID, u.Email)
	switch {
	case errors.Is(err, events.ErrNotFound):
		http.Error(w, "There is no such event.", http.StatusNotFound)
		return
	case errors.Is(err, events.ErrNotMember):
		http.Error(w, "The chat is for the event's confirmed participants and hosts; sign in with the address you registered.", http.StatusForbidden)
		return
	case err != nil:
		h.d.Log.Error("chat membership", "event", eid, "err", err)
		http.Error(w, "The chat is unavailable right now; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	ok, err := h.d.Events.CanJoinRoom(r.Context(), m, room)
	if err != nil {
		h.d.Log.Error("chat room access", "event", eid, "room", room, "err", err)
		http.Error(w, "The chat is unavailable right now; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	if !ok {
		http.Error(w, "This team chat is for the team's members and the event's hosts.", http.StatusForbidden)
		return
	}
	h.Serve(w, r, m, ev, room, after)
}

// Serve upgrades an authorised request and serves member m in room until
// the connection ends. It is the socket's whole life after the checks.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, m events.Member, ev events.Event, room string, after *uint64) {
	c, err := websocket.Accept(wholeFrames(w), r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return // Accept answered the request
	}
	defer c.CloseNow()
	if !h.claim(m.UserID) {
		c.Close(websocket.StatusPolicyViolation, tooManySockets)
		return
	}
	defer h.release(m.UserID)
	c.SetReadLimit(maxFrameBytes)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sock, err := h.d.Hub.Join(ctx, m.EventID, room, after)
	if err != nil {
		h.d.Log.Error("join chat room", "event", m.EventID, "room", room, "err", err)
		c.Close(websocket.StatusTryAgainLater, "the chat is unavailable right now; reconnecting")
		return
	}
	defer sock.Leave()
	p := &poster{h: h, c: c, sock: sock, m: m, ev: ev, room: room, earlier: rate.NewLimiter(5, 10)}
	p.member = h.d.Events.NewRecheck(m, ev, events.MemberRecheck, h.d.Now, func(ctx context.Context, m events.Member, _ events.Event) (bool, error) {
		return h.d.Events.CanJoinRoom(ctx, m, room)
	})
	// after: the sequence the socket starts after; a client that drops
	// before any message arrived resumes from it.
	hello, _ := json.Marshal(map[string]any{"type": "hello", "room": room, "read_only": p.readOnly(), "after": sock.Start()})
	if err := write(ctx, c, hello); err != nil {
		return
	}
	go func() {
		defer cancel()
		p.read(ctx)
	}()
	// The fan-out's write deadline: one timer per socket, armed only
	// while a frame is being written and reused for every frame (a
	// context.WithTimeout per frame allocated a timer and registered a
	// child context each time, 15% of an edge's CPU under load). When it
	// fires the socket's context ends and the connection closes, which
	// aborts the write, as a timed-out write did.
	stalled := time.AfterFunc(time.Hour, func() { cancel(); c.CloseNow() })
	stalled.Stop()
	err = sock.Run(ctx, func(ctx context.Context, frame []byte) error {
		stalled.Reset(writeTimeout)
		// Written under a context that is never cancelled: coder/websocket
		// watches a cancellable one with a context.AfterFunc per frame
		// (registered and removed each time); the stall timer closes the
		// connection itself, which ends a blocked write just as well.
		err := c.Write(context.WithoutCancel(ctx), websocket.MessageText, frame)
		stalled.Stop()
		return err
	})
	switch {
	case errors.Is(err, chathub.ErrBehind):
		c.Close(websocket.StatusTryAgainLater, "too far behind; reconnect to resume")
		return
	case errors.Is(err, chathub.ErrClosing):
		c.Close(websocket.StatusGoingAway, "edge shutting down; reconnect to resume")
		return
	}
	c.Close(websocket.StatusNormalClosure, "")
}

const (
	// maxFrameBytes bounds what a client may send in one frame: a post
	// of MaxRunes characters (up to 4 bytes each) and its envelope.
	maxFrameBytes = 4*chat.MaxRunes + 1024
	// writeTimeout drops a connection that cannot take a frame in time.
	writeTimeout = 10 * time.Second
)

func write(ctx context.Context, c *websocket.Conn, frame []byte) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, frame)
}

// poster handles what a client sends: posts and "load earlier".
type poster struct {
	h    *Handler
	c    *websocket.Conn
	sock *chathub.Socket
	m    events.Member
	ev   events.Event
	room string
	// earlier bounds "load earlier" requests (each reads the stream):
	// scrolling fast asks a few a second, not hundreds.
	earlier *rate.Limiter
	// member confirms m's membership (and room) again on a post, at most
	// once a minute (events.Recheck, the rule of every live socket).
	member *events.Recheck
}

// stillMember confirms that the socket's member may still be in its room,
// reading the event again once the last check is a minute old.
func (p *poster) stillMember(ctx context.Context) (bool, error) {
	ok, err := p.member.Still(ctx)
	if ok {
		p.m, p.ev = p.member.Member()
	}
	return ok, err
}

func (p *poster) readOnly() bool { return !p.h.d.Now().Before(p.ev.End) }

// request is a client frame: {"type":"post","id":…,"text":…} or
// {"type":"earlier","before":<seq>}.
type request struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Text   string `json:"text"`
	Before uint64 `json:"before"`
}

func (p *poster) read(ctx context.Context) {
	for {
		typ, data, err := p.c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
				p.h.d.Log.Info("chat frame too large", "event", p.m.EventID)
			}
			return
		}
		var req request
		if typ != websocket.MessageText || json.Unmarshal(data, &req) != nil {
			p.reply(ctx, map[string]any{"type": "error", "error": "frames are JSON objects"})
			continue
		}
		switch req.Type {
		case "post":
			p.post(ctx, req)
		case "earlier":
			if !p.earlier.Allow() {
				p.reply(ctx, map[string]any{"type": "error", "error": "Too many requests for earlier messages; scroll again in a moment."})
				continue
			}
			frame, err := p.sock.Earlier(ctx, req.Before)
			if err != nil {
				p.h.d.Log.Error("chat earlier messages", "event", p.m.EventID, "err", err)
				p.reply(ctx, map[string]any{"type": "error", "error": "Earlier messages could not be loaded; try again."})
				continue
			}
			if write(ctx, p.c, frame) != nil {
				return
			}
		default:
			p.reply(ctx, map[string]any{"type": "error", "error": "unknown frame type"})
		}
	}
}

func (p *poster) post(ctx context.Context, req request) {
	fail := func(msg string) { p.reply(ctx, map[string]any{"type": "error", "id": req.ID, "error": msg}) }
	if !chat.ValidClientID(req.ID) {
		fail("A message needs an id of 1–64 letters, digits, - or _.")
		return
	}
	if p.readOnly() {
		fail("The event has ended; its chat is read-only.")
		return
	}
	text, err := chat.CleanText(req.Text)
	switch {
	case errors.Is(err, chat.ErrTooLong):
		fail("Your message is too long: a message holds at most " + strconv.Itoa(chat.MaxRunes) + " characters.")
		return
	case err != nil:
		fail("Your message was not sent: " + err.Error() + ".")
		return
	}
	member, err := p.stillMember(ctx)
	if err != nil {
		p.h.d.Log.Error("chat membership", "event", p.m.EventID, "err", err)
		fail("Your message could not be sent right now; try again in a moment.")
		return
	}
	if !member {
		fail("You are no longer a participant or host of this event; this chat is closed to you.")
		p.c.Close(websocket.StatusPolicyViolation, "no longer a member of the event")
		return
	}
	okRate, err := p.h.d.Posts.Allow(ctx, p.m.EventID+"."+p.m.UserID)
	if err != nil {
		p.h.d.Log.Error("chat rate limit", "err", err)
		fail("Your message could not be sent right now; try again in a moment.")
		return
	}
	if !okRate {
		fail("You are sending messages too fast; wait a moment and send again.")
		return
	}
	msg, _, err := p.h.d.Store.Post(ctx, chat.Message{EventID: p.m.EventID, Room: p.room, UserID: p.m.UserID,
		AuthorID: p.m.EngagementID(), Name: p.m.Name, Admin: p.m.Admin, Text: text}, req.ID)
	if err != nil && msg.ID == 0 {
		p.h.d.Log.Error("post chat message", "event", p.m.EventID, "err", err)
		fail("Your message could not be sent right now; try again in a moment.")
		return
	}
	if err != nil {
		// Stored, its engagement not yet: a retry with the same id
		// records it without storing the message twice.
		p.h.d.Log.Warn("chat engagement not recorded", "event", p.m.EventID, "seq", msg.ID, "err", err)
	}
	p.reply(ctx, map[string]any{"type": "ack", "id": req.ID, "seq": msg.ID})
}

func (p *poster) reply(ctx context.Context, v any) {
	b, _ := json.Marshal(v)
	write(ctx, p.c, b)
}
