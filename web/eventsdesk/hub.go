package eventsdesk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/events"
)

// hub is this edge's side of the help desk's fan-out: for each event with
// at least one socket here (admins' dashboards, and team pages showing
// their request's state) it watches that event's help flags (one KV watch
// per event and edge, not per socket), keeps them in memory and wakes the
// sockets on every change. The last socket of an event stops its watch.
type hub struct {
	ctx context.Context // the edge's lifetime
	svc *events.Service
	log *slog.Logger

	mu     sync.Mutex
	events map[string]*eventFlags
}

type eventFlags struct {
	flags map[string]events.HelpFlag // by flag id
	ready bool                       // the watch delivered the current flags
	subs  map[chan struct{}]struct{}
	stop  context.CancelFunc
}

func newHub(ctx context.Context, svc *events.Service, log *slog.Logger) *hub {
	return &hub{ctx: ctx, svc: svc, log: log, events: map[string]*eventFlags{}}
}

// subscribe registers a socket of event eid. The channel receives a token
// (coalesced: at most one waits) whenever the flags change, and one at
// once when they are known.
func (h *hub) subscribe(eid string) (<-chan struct{}, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := h.events[eid]
	if ev == nil {
		ctx, cancel := context.WithCancel(h.ctx)
		w, err := h.svc.WatchHelp(ctx, eid)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		ev = &eventFlags{flags: map[string]events.HelpFlag{}, subs: map[chan struct{}]struct{}{}, stop: cancel}
		h.events[eid] = ev
		go h.follow(ctx, eid, ev, w)
	}
	ch := make(chan struct{}, 1)
	ev.subs[ch] = struct{}{}
	if ev.ready {
		ch <- struct{}{}
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(ev.subs, ch)
		if len(ev.subs) == 0 && h.events[eid] == ev {
			ev.stop()
			delete(h.events, eid)
		}
	}, nil
}

// follow applies the watch's entries until ctx ends. When the watch ends
// on its own, the event's sockets are let go (their pages reconnect, which
// starts a new watch) rather than left showing a queue that no longer
// changes.
func (h *hub) follow(ctx context.Context, eid string, ev *eventFlags, w jetstream.KeyWatcher) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				h.log.Warn("events desk: help flag watch ended; dropping its admin sockets", "event", eid)
				h.mu.Lock()
				if h.events[eid] == ev {
					delete(h.events, eid)
				}
				for ch := range ev.subs {
					close(ch)
				}
				ev.subs = map[chan struct{}]struct{}{}
				h.mu.Unlock()
				ev.stop()
				return
			}
			h.mu.Lock()
			switch {
			case e == nil:
				ev.ready = true
			case e.Operation() != jetstream.KeyValuePut:
				delete(ev.flags, strings.TrimPrefix(e.Key(), eid+"."))
			default:
				f, err := events.DecodeHelpFlag(e)
				if err != nil {
					h.log.Warn("events desk: skip help flag", "key", e.Key(), "err", err)
				} else {
					ev.flags[f.ID] = f
				}
			}
			if ev.ready {
				for ch := range ev.subs {
					select {
					case ch <- struct{}{}:
					default: // a wake-up is already waiting
					}
				}
			}
			h.mu.Unlock()
		}
	}
}

// snapshot returns event eid's flags as dashboards order them.
func (h *hub) snapshot(eid string) []events.HelpFlag {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := h.events[eid]
	if ev == nil {
		return nil
	}
	out := make([]events.HelpFlag, 0, len(ev.flags))
	for _, f := range ev.flags {
		out = append(out, f)
	}
	events.SortHelpFlags(out)
	return out
}

// writeWithin bounds one frame's write: a socket that cannot take it is
// closed rather than holding up its goroutine.
const writeWithin = 10 * time.Second

// pingEvery is how often a quiet admin socket is pinged.
const pingEvery = 30 * time.Second

// Frame is one message of the admin socket: the HTML (rendered as on the
// page) that replaces the contents of the element with ID.
type Frame struct {
	ID   string `json:"id"`
	HTML string `json:"html"`
}

// Element ids the admin socket updates.
const (
	HelpQueueID = "help-queue"
	FiguresID   = "live-figures"
	TeamsID     = "team-activity"
	TeamHelpID  = "team-help"
)

// namesFor is how long an admin socket reuses the team members' names
// it read; a participant who had their data deleted shows their pseudonym
// after at most this.
const namesFor = time.Minute

// adminSocket is an admin's live dashboard: on every change of the
// event's help flags it sends the help queue and the teams table, and
// every FiguresEvery the analytics figures and the teams table with fresh
// activity, each as one JSON Frame.
func (h *Handler) adminSocket(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	// A socket lives for the whole event: a host removed since it opened
	// stops receiving the help queue and the figures.
	member := h.d.Events.NewRecheck(m, e, h.d.MemberRecheck, h.d.Now, func(_ context.Context, m events.Member, _ events.Event) (bool, error) {
		return m.Admin, nil
	})
	t := time.NewTicker(h.d.FiguresEvery)
	defer t.Stop()
	var teams teamsState
	h.serveSocket(w, r, member, "no longer a host of the event", t.C, func(ctx context.Context, woke bool) ([]Frame, error) {
		m, e := member.Member()
		var out []Frame
		if woke {
			out = append(out, Frame{ID: HelpQueueID, HTML: h.renderQueue(ctx, m, e)})
		} else if f, ok := h.renderFigures(ctx, e); ok {
			out = append(out, f)
		}
		// A flag's change shows in the table at once; activity is read
		// again on the ticks only.
		if f, ok := h.renderTeams(ctx, e, &teams, !woke); ok {
			out = append(out, f)
		}
		return out, nil
	})
}

// renderFigures renders the analytics figures; ok is false when there
// are none (the next tick tries again).
func (h *Handler) renderFigures(ctx context.Context, e events.Event) (Frame, bool) {
	if h.d.Figures == nil {
		return Frame{}, false
	}
	comp := h.d.Figures(ctx, e)
	if comp == nil {
		return Frame{}, false
	}
	var b bytes.Buffer
	if err := comp.Render(ctx, &b); err != nil {
		return Frame{}, false
	}
	return Frame{ID: FiguresID, HTML: b.String()}, true
}

// teamsState is what an admin socket keeps between teams tables: the
// members' names (read again after namesFor, or when someone new is in a
// team) and the last activity read.
type teamsState struct {
	names    map[string]string
	namesAt  time.Time
	activity *Activity
}

// renderTeams renders the teams table from the stored teams and
// submissions, this edge's copy of the help flags and, when fresh, newly
// read activity. ok is false when it could not be read (the next change
// or tick tries again).
func (h *Handler) renderTeams(ctx context.Context, e events.Event, st *teamsState, fresh bool) (Frame, bool) {
	sp, err := h.d.Events.Teams(ctx, e.ID)
	if err != nil && !errors.Is(err, events.ErrNoTeams) {
		h.d.Log.Warn("events desk: teams for teams table", "event", e.ID, "err", err)
		return Frame{}, false
	}
	subs, err := h.d.Events.Submissions(ctx, e.ID)
	if err != nil {
		h.d.Log.Warn("events desk: submissions for teams table", "event", e.ID, "err", err)
		return Frame{}, false
	}
	d := teamsData{EventID: e.ID, Teams: sp.Teams, TeamHelp: teamHelpStates(h.hub.snapshot(e.ID)), Subs: map[string]events.Submission{}}
	for _, s := range subs {
		d.Subs[s.TeamID] = s
	}
	var rids []string
	known := st.names != nil && h.d.Now().Sub(st.namesAt) < namesFor
	for _, t := range sp.Teams {
		for _, rid := range t.Members {
			rids = append(rids, rid)
			if _, ok := st.names[rid]; !ok {
				known = false
			}
		}
	}
	if !known {
		names, err := h.d.Events.Names(ctx, e.ID, rids)
		if err != nil {
			h.d.Log.Warn("events desk: names for teams table", "event", e.ID, "err", err)
			return Frame{}, false
		}
		st.names, st.namesAt = names, h.d.Now()
	}
	d.Names = st.names
	if fresh || st.activity == nil {
		st.activity = h.activity(ctx, e)
	}
	d.Activity = st.activity
	var b bytes.Buffer
	if err := teamTable(d).Render(ctx, &b); err != nil {
		return Frame{}, false
	}
	return Frame{ID: TeamsID, HTML: b.String()}, true
}

// renderQueue renders the help queue from this edge's copy of the flags.
func (h *Handler) renderQueue(ctx context.Context, m events.Member, e events.Event) string {
	teams := map[string]string{}
	sp, err := h.d.Events.Teams(ctx, e.ID)
	if err != nil && !errors.Is(err, events.ErrNoTeams) {
		h.d.Log.Warn("events desk: teams for help queue", "event", e.ID, "err", err)
	}
	for _, t := range sp.Teams {
		teams[t.ID] = t.Name
	}
	var b bytes.Buffer
	_ = helpQueue(e.ID, h.hub.snapshot(e.ID), teams, m.UserID, h.d.Now()).Render(ctx, &b)
	return b.String()
}

// teamSocket keeps a team page's help card live: when the team's request
// is raised, claimed or resolved (by anyone, on any edge) it sends the
// card again as one Frame. Only the team's members open it.
func (h *Handler) teamSocket(w http.ResponseWriter, r *http.Request, m events.Member, e events.Event) {
	t, ok := h.teamOf(w, r, m, http.StatusForbidden, "No team", "You are not in a team of this event.")
	if !ok {
		return
	}
	// A participant who cancelled or was moved to another team since the
	// socket opened stops receiving this team's updates.
	member := h.d.Events.NewRecheck(m, e, h.d.MemberRecheck, h.d.Now, func(ctx context.Context, m events.Member, _ events.Event) (bool, error) {
		now, err := h.d.Events.TeamOf(ctx, m.EventID, m.RegistrationID)
		if errors.Is(err, events.ErrNoTeam) {
			return false, nil
		}
		return err == nil && now.ID == t.ID, err
	})
	sent := "-" // the state last sent: flag id and state, "" for none
	h.serveSocket(w, r, member, "no longer in this team", nil, func(ctx context.Context, _ bool) ([]Frame, error) {
		_, e := member.Member()
		var open *events.HelpFlag
		for _, f := range h.hub.snapshot(e.ID) {
			if f.TeamID == t.ID && f.State != events.HelpResolved {
				open = &f
				break
			}
		}
		state := ""
		if open != nil {
			state = open.ID + "." + open.State
		}
		if state == sent {
			return nil, nil // another team's flag changed
		}
		sent = state
		var b bytes.Buffer
		now := h.d.Now()
		if err := teamHelp(e.ID, open, true, e.Past(now), now).Render(ctx, &b); err != nil {
			return nil, err
		}
		return []Frame{{ID: TeamHelpID, HTML: b.String()}}, nil
	})
}

// serveSocket is the life of a help desk socket, admin's or team's. It
// accepts the connection, follows the event's help flags through the hub,
// and sends the frames frames returns — after each change of the flags
// (woke true) and on each tick (woke false; tick may be nil) — until the
// viewer closes it or is no longer allowed (member, checked every
// member.Every(), closing with reason gone). An error from frames ends
// the socket. The socket is read only for its close.
func (h *Handler) serveSocket(w http.ResponseWriter, r *http.Request, member *events.Recheck, gone string, tick <-chan time.Time, frames func(ctx context.Context, woke bool) ([]Frame, error)) {
	// Accept checks that the Origin is this site: another site's page
	// cannot open a viewer's socket with the viewer's cookie.
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context())
	_, e := member.Member()
	wake, leave, err := h.hub.subscribe(e.ID)
	if err != nil {
		h.d.Log.Error("events desk: watch help flags", "event", e.ID, "err", err)
		c.Close(websocket.StatusInternalError, "help flags unavailable")
		return
	}
	defer leave()
	// A ping now and then keeps idle proxies from closing a quiet socket
	// and finds a peer that went away without closing.
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	recheck := time.NewTicker(member.Every())
	defer recheck.Stop()
	for {
		woke := false
		select {
		case <-ctx.Done():
			c.Close(websocket.StatusNormalClosure, "")
			return
		case <-recheck.C:
			if !h.stillAllowed(ctx, c, member, gone) {
				return
			}
			continue
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, writeWithin)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
			continue
		case _, ok := <-wake:
			if !ok {
				c.Close(websocket.StatusTryAgainLater, "reconnect")
				return
			}
			woke = true
		case <-tick:
		}
		out, err := frames(ctx, woke)
		if err != nil {
			return
		}
		for _, f := range out {
			data, _ := json.Marshal(f)
			wctx, cancel := context.WithTimeout(ctx, writeWithin)
			err = c.Write(wctx, websocket.MessageText, data)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// stillAllowed confirms a socket's viewer again (events.Recheck) and, when
// they are no longer allowed, closes the socket with reason. When
// membership cannot be read the socket stays and the next tick retries.
func (h *Handler) stillAllowed(ctx context.Context, c *websocket.Conn, member *events.Recheck, reason string) bool {
	ok, err := member.Still(ctx)
	if err != nil {
		m, _ := member.Member()
		h.d.Log.Warn("events desk: recheck socket member", "event", m.EventID, "err", err)
		return true
	}
	if !ok {
		c.Close(websocket.StatusPolicyViolation, reason)
	}
	return ok
}
