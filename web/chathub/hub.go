// Package chathub is an edge's chat fan-out: one room per event room that
// has sockets on this edge, each fed by one ordered JetStream consumer
// (released when its last socket leaves), keeping a window of recent
// messages already rendered; every socket holds only a cursor into that
// window. The room publishes what arrived as one batch at most once a slot
// (100 ms; at once after an idle slot), renders the batch's frame once,
// and wakes every socket with one channel close; a caught-up socket writes
// that shared frame, one that fell behind writes everything it missed as
// one frame (shared by the sockets as far behind), so the cost follows
// sockets × frames, not sockets × messages, with no timer per socket. A
// socket that falls behind the window is closed and resumes by
// reconnecting with its last sequence.
package chathub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/chat"
	"jetfleet/subjects"
)

// Config tunes a hub; zero values take the defaults.
type Config struct {
	// Slot is the shortest time between two frames to one socket;
	// default 100 ms.
	Slot time.Duration
	// Window is how many recent messages each room keeps: the furthest a
	// socket may fall behind before it is closed; default 16384. It bounds
	// memory (about 350 bytes a rendered message: under 6 MiB a room and
	// edge) while leaving a socket slowed by a CPU-saturated machine
	// (seconds behind, measured by make bench-chat) far from the edge:
	// 98 s of a 167 messages/s room, 33 s at 500 messages/s.
	Window int
	// History is how many messages a socket gets on connect; default 20.
	History int
	// MaxFrameItems bounds the messages of one frame; default 512.
	MaxFrameItems int
}

func (c *Config) defaults() {
	if c.Slot <= 0 {
		c.Slot = 100 * time.Millisecond
	}
	if c.Window <= 0 {
		c.Window = 16384
	}
	if c.History <= 0 {
		c.History = 20
	}
	if c.MaxFrameItems <= 0 {
		c.MaxFrameItems = 512
	}
}

// Render turns a message into its item in frames: a JSON object, built
// once per message and edge.
type Render func(chat.Message) []byte

// Hub is one edge's set of rooms.
type Hub struct {
	cfg    Config
	js     jetstream.JetStream
	store  *chat.Store
	render Render
	log    *slog.Logger
	ctx    context.Context

	mu    sync.Mutex
	rooms map[string]*room
}

// New returns a hub whose rooms live at most as long as ctx.
func New(ctx context.Context, js jetstream.JetStream, store *chat.Store, render Render, cfg Config, log *slog.Logger) *Hub {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{cfg: cfg, js: js, store: store, render: render, log: log, ctx: ctx, rooms: map[string]*room{}}
}

// Rooms is how many rooms this edge follows (one consumer each).
func (h *Hub) Rooms() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms)
}

type entry struct {
	seq  uint64
	item []byte
}

type room struct {
	hub       *Hub
	key       string
	eventID   string
	name      string
	refs      int // sockets, guarded by hub.mu
	ready     chan struct{}
	done      <-chan struct{} // closed when the room stops (the edge shuts down)
	err       error           // set before ready closes
	stop      func()
	frameMu   sync.Mutex
	frames    map[[2]uint64][]byte
	frameKeys [][2]uint64

	mu      sync.RWMutex
	loaded  bool
	early   []entry // delivered before the history was loaded
	entries []entry // ascending
	// from: every message of the room with a sequence above from is in
	// entries (or has not arrived yet).
	from uint64
	// high: no message of the room has a higher sequence than this yet
	// (the stream's last sequence when the room opened, or the newest
	// entry).
	high uint64
	// published: sockets are sent entries up to this sequence; newer
	// ones wait for the room's next slot, so that every socket sends the
	// same batch at the same moment.
	published uint64
	// batch is the last published batch, its frame built once for every
	// socket that was caught up.
	batch struct {
		first, last uint64
		frame       []byte
	}
	// tick is closed (and replaced) when a batch is published: one wake
	// for every waiting socket, without a list of waiters.
	tick chan struct{}
	// lastPublish and flushing: the room publishes at once after an idle
	// slot, else at the next slot (one timer per room, not per socket).
	lastPublish time.Time
	flushing    bool
}

// Socket is one connection's place in a room.
type Socket struct {
	room   *room
	cursor uint64 // last sequence sent
	gap    uint64 // messages in (cursor, gap] must be read from the stream first
	start  uint64
	once   sync.Once
}

// Start is where the socket started: it is sent every message of the room
// with a higher sequence. A client that loses the connection before it
// has any message resumes from here (after=Start), not from "the last 20",
// which would skip what was posted meanwhile.
func (s *Socket) Start() uint64 { return s.start }

// ErrBehind closes a socket whose cursor fell out of its room's window.
var ErrBehind = errors.New("this connection fell too far behind the chat; reconnect to resume")

// ErrClosing ends every socket of an edge that is shutting down; clients
// resume on another edge.
var ErrClosing = errors.New("this edge is shutting down; reconnect to resume")

// Join places a new socket in room of event eventID. With after nil the
// socket starts with the room's last History messages; with a sequence it
// starts right after it (a resume: no gap, no repeat). Leave releases it.
func (h *Hub) Join(ctx context.Context, eventID, name string, after *uint64) (*Socket, error) {
	key := eventID + "." + name
	h.mu.Lock()
	r := h.rooms[key]
	if r == nil {
		rctx, cancel := context.WithCancel(h.ctx)
		r = &room{hub: h, key: key, eventID: eventID, name: name, ready: make(chan struct{}), stop: cancel, done: rctx.Done(),
			frames: map[[2]uint64][]byte{}, tick: make(chan struct{})}
		h.rooms[key] = r
		go r.run(rctx)
	}
	r.refs++
	h.mu.Unlock()
	s := &Socket{room: r}
	select {
	case <-r.ready:
	case <-ctx.Done():
		s.Leave()
		return nil, ctx.Err()
	}
	if r.err != nil {
		s.Leave()
		return nil, r.err
	}
	if after != nil {
		r.mu.Lock()
		ahead := *after > r.high
		r.mu.Unlock()
		// Beyond what this room has seen: either a message another edge
		// delivered first (normal), or a sequence the stream never reached
		// (it was recreated), which is treated as a fresh connect rather
		// than waited for. Only the stream can tell.
		if ahead {
			last, err := h.store.LastSeq(ctx)
			if err != nil {
				s.Leave()
				return nil, err
			}
			if *after > last {
				after = nil
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case after == nil:
		if n := len(r.entries); n > h.cfg.History {
			s.cursor = r.entries[n-h.cfg.History-1].seq
		} else {
			s.cursor = r.from
		}
	case *after >= r.from:
		s.cursor = *after
	default:
		s.cursor, s.gap = *after, r.from
	}
	s.start = s.cursor
	return s, nil
}

// Leave releases the socket; the room stops following the stream when its
// last socket leaves.
func (s *Socket) Leave() {
	s.once.Do(func() {
		r := s.room
		h := r.hub
		h.mu.Lock()
		r.refs--
		if r.refs == 0 {
			delete(h.rooms, r.key)
			r.stop()
		}
		h.mu.Unlock()
	})
}

// run follows the room: it starts an ordered consumer right after the
// stream's current last sequence, then loads the recent history up to that
// sequence, so history and live messages meet without gap or overlap.
func (r *room) run(ctx context.Context) {
	h := r.hub
	fail := func(err error) {
		r.err = fmt.Errorf("open chat room: %w", err)
		h.log.Error("open chat room", "event", r.eventID, "room", r.name, "err", err)
		close(r.ready)
	}
	last, err := h.store.LastSeq(ctx)
	if err != nil {
		fail(err)
		return
	}
	cons, err := h.js.OrderedConsumer(ctx, subjects.EventsChatStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.EventsChatRoomFilter(r.eventID, r.name)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    last + 1,
	})
	if err != nil {
		fail(err)
		return
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			return
		}
		var m chat.Message
		if err := json.Unmarshal(msg.Data(), &m); err != nil {
			h.log.Warn("chat message is not JSON; not shown", "seq", md.Sequence.Stream)
			return
		}
		m.ID = md.Sequence.Stream
		r.add(entry{seq: m.ID, item: h.render(m)})
	})
	if err != nil {
		fail(err)
		return
	}
	defer cc.Stop()
	hist, more, err := h.store.Before(ctx, r.eventID, r.name, last+1, max(h.cfg.History, min(h.cfg.Window/2, 100)))
	if err != nil {
		fail(err)
		return
	}
	r.mu.Lock()
	for _, m := range hist {
		r.entries = append(r.entries, entry{seq: m.ID, item: h.render(m)})
	}
	if more && len(hist) > 0 {
		r.from = hist[0].ID - 1
	}
	r.high = max(r.high, last)
	if n := len(r.entries); n > 0 {
		r.published = r.entries[n-1].seq
	}
	r.loaded = true
	early := r.early
	r.early = nil
	r.mu.Unlock()
	for _, e := range early {
		r.add(e)
	}
	close(r.ready)
	<-ctx.Done()
}

// add appends a live message; the room publishes it at once when the
// last batch is a slot old, else with the others of the next slot.
func (r *room) add(e entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.loaded {
		r.early = append(r.early, e)
		return
	}
	if n := len(r.entries); n > 0 && e.seq <= r.entries[n-1].seq {
		return // already known (the ordered consumer restarted)
	}
	r.entries = append(r.entries, e)
	r.high = max(r.high, e.seq)
	if over := len(r.entries) - r.hub.cfg.Window; over > 0 {
		r.from = r.entries[over-1].seq
		// Copy rather than reslice now and then, so the dropped head
		// can be collected.
		if over > r.hub.cfg.Window/4 {
			r.entries = append([]entry(nil), r.entries[over:]...)
		} else {
			r.entries = r.entries[over:]
		}
	}
	if r.flushing {
		return
	}
	if wait := r.hub.cfg.Slot - time.Since(r.lastPublish); wait > 0 {
		r.flushing = true
		time.AfterFunc(wait, r.flush)
		return
	}
	r.publishLocked()
}

func (r *room) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushing = false
	r.publishLocked()
}

// publishLocked makes the unpublished entries one batch, renders its frame
// once and wakes every waiting socket.
func (r *room) publishLocked() {
	n := len(r.entries)
	if n == 0 || r.entries[n-1].seq <= r.published {
		return
	}
	i := sort.Search(n, func(i int) bool { return r.entries[i].seq > r.published })
	es := r.entries[i:]
	if len(es) > r.hub.cfg.MaxFrameItems {
		es = es[len(es)-r.hub.cfg.MaxFrameItems:]
	}
	r.batch.first, r.batch.last, r.batch.frame = es[0].seq, es[len(es)-1].seq, messagesFrame(es)
	r.published = es[len(es)-1].seq
	r.lastPublish = time.Now()
	close(r.tick)
	r.tick = make(chan struct{})
}

// pending returns the published entries past the socket's cursor (at most
// limit), or none and the channel closed by the next publish.
func (r *room) pending(s *Socket, limit int) ([]entry, <-chan struct{}, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s.cursor < r.from {
		return nil, nil, ErrBehind
	}
	if s.cursor >= r.published {
		return nil, r.tick, nil
	}
	i := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].seq > s.cursor })
	j := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].seq > r.published })
	return r.entries[i:min(j, i+limit)], nil, nil
}

// frame returns the frame of es, built once for every socket sending the
// same messages in the same slot.
func (r *room) frame(es []entry) []byte {
	r.mu.RLock()
	b := r.batch
	r.mu.RUnlock()
	if es[0].seq == b.first && es[len(es)-1].seq == b.last {
		// The usual case: the socket was caught up (entries are one
		// ascending slice, so the same ends are the same items).
		return b.frame
	}
	key := [2]uint64{es[0].seq, es[len(es)-1].seq}
	r.frameMu.Lock()
	defer r.frameMu.Unlock()
	if f, ok := r.frames[key]; ok {
		return f
	}
	f := messagesFrame(es)
	r.frames[key] = f
	r.frameKeys = append(r.frameKeys, key)
	if len(r.frameKeys) > 64 {
		delete(r.frames, r.frameKeys[0])
		r.frameKeys = r.frameKeys[1:]
	}
	return f
}

// messagesFrame is the frame carrying items: {"type":"messages","items":[…]}.
func messagesFrame(es []entry) []byte {
	n := 40
	for _, e := range es {
		n += len(e.item) + 1
	}
	var b bytes.Buffer
	b.Grow(n)
	b.WriteString(`{"type":"messages","items":[`)
	for i, e := range es {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e.item)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// Send writes one frame to the socket's connection.
type Send func(ctx context.Context, frame []byte) error

// Run writes the socket's frames until ctx ends, send fails, or the
// socket falls behind (ErrBehind).
func (s *Socket) Run(ctx context.Context, send Send) error {
	r, h := s.room, s.room.hub
	if s.gap > s.cursor {
		if err := s.fillGap(ctx, send); err != nil {
			return err
		}
	}
	for {
		es, tick, err := r.pending(s, h.cfg.MaxFrameItems)
		if err != nil {
			return err
		}
		if es == nil {
			// The room publishes at most one batch a slot, at the same
			// moment for every socket: caught-up sockets send the same
			// frame, built once; one behind sends all it missed at once.
			select {
			case <-tick:
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-r.done:
				return ErrClosing
			}
		}
		if err := send(ctx, r.frame(es)); err != nil {
			return err
		}
		s.cursor = es[len(es)-1].seq
	}
}

// fillGap sends the messages a resuming socket missed that are older than
// the room's window, read from the stream.
func (s *Socket) fillGap(ctx context.Context, send Send) error {
	r, h := s.room, s.room.hub
	for s.cursor < s.gap {
		msgs, err := h.store.After(ctx, r.eventID, r.name, s.cursor, s.gap, h.cfg.MaxFrameItems)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			break
		}
		es := make([]entry, len(msgs))
		for i, m := range msgs {
			es[i] = entry{seq: m.ID, item: h.render(m)}
		}
		if err := send(ctx, messagesFrame(es)); err != nil {
			return err
		}
		s.cursor = msgs[len(msgs)-1].ID
	}
	s.cursor = max(s.cursor, s.gap)
	return nil
}

// Earlier returns the frame answering "load earlier": up to History
// messages before sequence before, oldest first, from the room's window
// when it holds them, else from the stream.
func (s *Socket) Earlier(ctx context.Context, before uint64) ([]byte, error) {
	r, h := s.room, s.room.hub
	n := h.cfg.History
	r.mu.Lock()
	i := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].seq >= before })
	if i > n || (i > 0 && r.from == 0) {
		es := append([]entry(nil), r.entries[max(0, i-n):i]...)
		more := i > n || r.from > 0
		r.mu.Unlock()
		return earlierFrame(es, more), nil
	}
	r.mu.Unlock()
	msgs, more, err := h.store.Before(ctx, r.eventID, r.name, before, n)
	if err != nil {
		return nil, err
	}
	es := make([]entry, len(msgs))
	for i, m := range msgs {
		es[i] = entry{seq: m.ID, item: h.render(m)}
	}
	return earlierFrame(es, more), nil
}

func earlierFrame(es []entry, more bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"type":"earlier","more":` + strconv.FormatBool(more) + `,"items":[`)
	for i, e := range es {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e.item)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
