package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/events"
	"jetfleet/internal/mail"
)

// The demo's live event: who runs it and who holds tickets, so that a
// newcomer can sign in as each of them (the dev outbox shows the links).
const (
	demoOrganiser = "organiser@demo.example"
	demoHost      = "host@demo.example"
	demoTitle     = "jetfleet demo: live hack night"
	// DemoStreamPath is where dev serves the demo's live HLS stream.
	demoStreamPath = "/demo/live/"
	demoPlaylist   = "stream.m3u8"
	demoStreamDir  = "demo-live"
	demoEventFile  = "demo-event.json"
)

// demoParticipants hold confirmed tickets for the demo event.
var demoParticipants = []struct{ Name, Email string }{
	{"Ada Lovelace", "ada@demo.example"},
	{"Grace Hopper", "grace@demo.example"},
}

// liveDemo is the demo's live event: a stream ffmpeg makes while dev runs,
// and the event that plays it.
type liveDemo struct {
	dir     string // DATA_DIR/demo-live: the playlist and its segments
	eventID string
	cancel  context.CancelFunc
	done    chan struct{} // closed when ffmpeg's supervisor has returned
}

// stop ends the stream and waits until ffmpeg has exited, so nothing
// writes into the data dir after dev returns.
func (d *liveDemo) stop() {
	d.cancel()
	<-d.done
}

// startLiveDemo makes sure the demo event exists and is live now (it is
// kept in the data dir, so a restart continues it; a restart on a later
// day moves its times to now), and runs ffmpeg making a live HLS test
// pattern with a running clock into DATA_DIR/demo-live until ctx ends.
// The stream is served by dev at demoStreamPath (liveDemo.wrap).
func startLiveDemo(ctx context.Context, cfg *config, js jetstream.JetStream, log *slog.Logger) (*liveDemo, string, error) {
	d := &liveDemo{dir: filepath.Join(cfg.DataDir, demoStreamDir), done: make(chan struct{})}
	// Segments of an earlier run would be played as if live.
	if err := os.RemoveAll(d.dir); err != nil {
		return nil, "", fmt.Errorf("demo stream dir: %w", err)
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("demo stream dir: %w", err)
	}
	svc, err := events.Open(ctx, js, events.Config{BaseURL: cfg.BaseURL, Mail: mail.Enqueuer(js), Log: log})
	if err != nil {
		return nil, "", err
	}
	users, err := accounts.Open(ctx, js, accounts.Config{})
	if err != nil {
		return nil, "", err
	}
	streamURL := strings.TrimRight(cfg.BaseURL, "/") + demoStreamPath + demoPlaylist
	e, err := ensureDemoEvent(ctx, svc, users, filepath.Join(cfg.DataDir, demoEventFile), streamURL, time.Now)
	if err != nil {
		return nil, "", fmt.Errorf("demo event: %w", err)
	}
	d.eventID = e.ID
	var streamCtx context.Context
	streamCtx, d.cancel = context.WithCancel(ctx)
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		log.Warn("demo live stream off: ffmpeg not found (make deps-run installs it)", "err", err)
		close(d.done)
	} else {
		go func() {
			defer close(d.done)
			superviseDemoStream(streamCtx, ffmpeg, d.dir, log)
		}()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  live event  %q is live now: %s%s\n", e.Title, strings.TrimRight(cfg.BaseURL, "/"), events.LivePath(e.ID))
	fmt.Fprintf(&b, "                stream %s (ffmpeg test pattern with a clock)\n", streamURL)
	fmt.Fprintf(&b, "                sign in (links appear in /outbox) as %s (organiser), %s (host)", demoOrganiser, demoHost)
	for _, p := range demoParticipants {
		fmt.Fprintf(&b, ", %s", p.Email)
	}
	b.WriteString(" (participants)\n")
	return d, b.String(), nil
}

// wrap serves the demo stream's directory at demoStreamPath in front of
// the site.
func (d *liveDemo) wrap(site http.Handler) http.Handler {
	files := http.StripPrefix(demoStreamPath, http.FileServer(http.Dir(d.dir)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, demoStreamPath) || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			site.ServeHTTP(w, r)
			return
		}
		// A public test pattern: any origin may play it (the site may be
		// opened as 127.0.0.1 while its links name localhost).
		w.Header().Set("Access-Control-Allow-Origin", "*")
		// A live playlist changes every segment: never from a cache.
		if strings.HasSuffix(r.URL.Path, ".m3u8") {
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		}
		files.ServeHTTP(w, r)
	})
}

// demoEventRecord keeps, in the data dir, which event is the demo's.
type demoEventRecord struct {
	EventID string `json:"event_id"`
}

// demoLead is how far before now the demo event starts, and demoLength
// how long it lasts from then.
const (
	demoLead   = 5 * time.Minute
	demoLength = 8 * time.Hour
)

// ensureDemoEvent returns the demo event, live at now: created with its
// organiser, a free ticket, confirmed participants and a host the first
// time; on later runs found through the record at path and, when its
// time has passed (or the site's address changed), moved to run now.
// Every step can run again: a run cut short is completed by the next.
func ensureDemoEvent(ctx context.Context, svc *events.Service, users *accounts.Store, path, streamURL string, now func() time.Time) (events.Event, error) {
	org, err := users.EnsureUser(ctx, demoOrganiser)
	if err != nil {
		return events.Event{}, err
	}
	var rec demoEventRecord
	var e events.Event
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &rec); err != nil {
			return events.Event{}, fmt.Errorf("%s is unreadable (delete it for a new demo event): %w", path, err)
		}
		e, err = svc.EventFor(ctx, org.ID, rec.EventID)
		if errors.Is(err, events.ErrNotFound) {
			rec.EventID = "" // deleted data: make a new one
		} else if err != nil {
			return events.Event{}, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return events.Event{}, fmt.Errorf("read %s: %w", path, err)
	}
	// Registration is open until the start: everything below happens with
	// the event ahead, then it is moved to have started.
	ahead := now().Add(10 * time.Minute)
	if rec.EventID == "" {
		if e, err = svc.CreateEvent(ctx, org.ID, demoInput(events.Event{TimeZone: "UTC"}, ahead, streamURL)); err != nil {
			return events.Event{}, err
		}
		rec.EventID = e.ID
		b, _ := json.Marshal(rec)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return events.Event{}, fmt.Errorf("keep the demo event: %w", err)
		}
	}
	missing, err := missingDemoParticipants(ctx, svc, e)
	if err != nil {
		return events.Event{}, err
	}
	if e.Status == events.Draft || len(missing) > 0 {
		if e, err = svc.UpdateEvent(ctx, org.ID, e.ID, demoInput(e, ahead, streamURL)); err != nil {
			return events.Event{}, err
		}
		if len(e.Tickets) == 0 {
			if e, err = svc.AddTicketType(ctx, org.ID, e.ID, events.TicketInput{Name: "Community", Price: "0", Quantity: "100"}); err != nil {
				return events.Event{}, err
			}
		}
		if e.Status == events.Draft {
			if e, err = svc.Publish(ctx, org.ID, e.ID); err != nil {
				return events.Event{}, err
			}
		}
		for _, p := range missing {
			r, err := svc.Register(ctx, e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[0].ID, Name: p.Name, Email: p.Email, Terms: true, DataSharing: true})
			if err != nil {
				return events.Event{}, fmt.Errorf("register %s: %w", p.Email, err)
			}
			// The demo stands in for the participant opening the link.
			if _, err := svc.Confirm(ctx, p.Email, e.ID, r.ID); err != nil {
				return events.Event{}, fmt.Errorf("confirm %s: %w", p.Email, err)
			}
		}
	}
	if e, err = svc.AddHost(ctx, org.ID, e.ID, demoHost); err != nil {
		return events.Event{}, err
	}
	if e.PhaseAt(now()) != events.PhaseLive || e.End.Sub(now()) < time.Hour || e.StreamURL != streamURL {
		if e, err = svc.UpdateEvent(ctx, org.ID, e.ID, demoInput(e, now().Add(-demoLead), streamURL)); err != nil {
			return events.Event{}, err
		}
	}
	return e, nil
}

// demoInput is the demo event's form: its details as they are (or the
// demo's own the first time), starting at start.
func demoInput(e events.Event, start time.Time, streamURL string) events.EventInput {
	in := events.InputOf(e)
	if e.ID == "" {
		in = events.EventInput{
			Title:        demoTitle,
			Description:  "A demo event that is always on: a live test pattern with a clock (ffmpeg, HLS), the main chat and teams.",
			BusinessType: "technology", TimeZone: e.TimeZone, Capacity: "100",
		}
	}
	loc := e.Location()
	in.Start = start.In(loc).Format(events.FormTime)
	in.End = start.Add(demoLength).In(loc).Format(events.FormTime)
	in.StreamURL = streamURL
	return in
}

func missingDemoParticipants(ctx context.Context, svc *events.Service, e events.Event) ([]struct{ Name, Email string }, error) {
	if e.Status != events.Live {
		return demoParticipants, nil
	}
	var out []struct{ Name, Email string }
	for _, p := range demoParticipants {
		m, _, err := svc.Member(ctx, e.ID, "", p.Email)
		switch {
		case errors.Is(err, events.ErrNotMember) || err == nil && m.RegistrationID == "":
			out = append(out, p)
		case err != nil:
			return nil, err
		}
	}
	return out, nil
}

// superviseDemoStream runs ffmpeg until ctx ends, starting it again (after
// a pause that grows) when it exits. ffmpeg runs in its own process group,
// which is what is stopped, so nothing of it outlives dev.
func superviseDemoStream(ctx context.Context, ffmpeg, dir string, log *slog.Logger) {
	pause := time.Second
	for ctx.Err() == nil {
		began := time.Now()
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, ffmpeg, demoStreamArgs(dir)...)
		cmd.Dir = dir
		cmd.Stderr = &limitedWriter{w: &stderr, n: 8 << 10}
		groupProcess(cmd)
		err := cmd.Run()
		if ctx.Err() != nil {
			return
		}
		log.Warn("demo live stream: ffmpeg exited; starting it again", "err", err, "stderr", strings.TrimSpace(stderr.String()), "in", pause)
		if time.Since(began) > time.Minute {
			pause = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// demoFonts are where Debian keeps a font for the clock; without one the
// test pattern's own seconds counter still runs.
var demoFonts = []string{
	"/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
	"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
}

// demoStreamArgs make a live HLS stream in dir: a 640×360 test pattern
// (with its own running seconds counter) and the wall clock, 2-second
// segments, the last six in the playlist, older ones deleted.
func demoStreamArgs(dir string) []string {
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25"}
	for _, f := range demoFonts {
		if _, err := os.Stat(f); err == nil {
			args = append(args, "-vf", "drawtext=fontfile="+f+":text=%{gmtime} UTC:fontsize=24:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6:x=(w-tw)/2:y=h-th-20")
			break
		}
	}
	return append(args,
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "500k",
		"-f", "hls", "-hls_time", "2", "-hls_list_size", "6", "-hls_flags", "delete_segments+independent_segments",
		"-hls_segment_filename", filepath.Join(dir, "seg-%06d.ts"), filepath.Join(dir, demoPlaylist))
}

// limitedWriter keeps the first n bytes written to it (ffmpeg's error
// output, for the log) and drops the rest.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
