// Command chatbench measures the live event chat's fan-out (make
// bench-chat): WebSocket clients in one event's main room, spread over
// edge processes (this binary re-run with -edge: the real web/chat socket
// handler and web/chathub hub, on a NATS server with JetStream that is
// this binary re-run with -natsd), posting at a steady rate. It prints
// connections held, messages and frames delivered per second, post →
// socket latency and its stages, edge CPU per delivered message and per
// frame, memory per connection, then does the same with a bare
// broadcaster (this binary with -bare: coder/websocket writing the same
// frames every 100 ms, no NATS, no storage) and prints the ratios. The
// load generator runs in this process, on the same machine; nothing here
// asserts.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"jetfleet/internal/benchenv"
	"jetfleet/internal/chat"
	"jetfleet/internal/events"
	"jetfleet/internal/natsserver"
	"jetfleet/subjects"
	webchat "jetfleet/web/chat"
	"jetfleet/web/chathub"
	"jetfleet/web/ratelimit"
)

func main() {
	var (
		clients  = flag.Int("clients", 5000, "WebSocket clients in the room")
		edges    = flag.Int("edges", 2, "edge processes the clients are spread over")
		rate     = flag.Float64("rate", 167, "messages posted per second (5,000 people × 2 a minute)")
		duration = flag.Duration("duration", 60*time.Second, "how long messages are posted")
		skipBare = flag.Bool("skip-bare", false, "measure jetfleet only")
		edge     = flag.Bool("edge", false, "internal: run as an edge process")
		bare     = flag.Bool("bare", false, "internal: run as the bare broadcaster")
		natsURL  = flag.String("nats", "", "internal: NATS URL of an edge")
		natsd    = flag.String("natsd", "", "internal: run as the NATS server, storing in this directory")
		event    = flag.String("event", "", "internal: event id of an edge")
		cpuprof  = flag.String("cpuprofile", "", "write the first edge's CPU profile (of the posting phase) to this file")
		genprof  = flag.String("genprofile", "", "write the load generator's CPU profile (of each posting phase; with the embedded NATS server in jetfleet's) to this file, .bare for the bare phase")
	)
	flag.Parse()
	var err error
	if *edge || *bare || *natsd != "" {
		// The orchestrator signals the profile's start and end to every
		// server; one without -cpuprofile must not die of it.
		signal.Ignore(syscall.SIGUSR1, syscall.SIGUSR2)
	}
	switch {
	case *edge:
		err = runEdge(*natsURL, *event, *cpuprof)
	case *bare:
		err = runBare()
	case *natsd != "":
		err = runNATS(*natsd)
	default:
		err = run(*clients, *edges, *rate, *duration, *skipBare, *cpuprof, *genprof)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		os.Exit(1)
	}
}

// listen serves h on a loopback port and prints the address as the
// process's first line, which the orchestrator reads.
func listen(h http.Handler) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	return (&http.Server{Handler: h}).Serve(l)
}

// runEdge is one jetfleet edge: the real socket handler after the
// membership check. Every client is a confirmed participant of the event
// (registered by the orchestrator as participantEmail(n)); the connect
// check is taken as passed, and the handler's own recheck (once a socket
// is a minute old, on its next post) reads the real registration.
func runEdge(url, eventID, cpuprofile string) error {
	ctx := context.Background()
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	store, err := chat.Open(ctx, js)
	if err != nil {
		return err
	}
	posts, err := ratelimit.NewShared(js, "chat-post", webchat.PostsPerMinute, time.Minute)
	if err != nil {
		return err
	}
	svc, err := events.Open(ctx, js, events.Config{})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st := newEdgeStages()
	h, err := webchat.New(webchat.Deps{Events: svc, Store: store, Posts: posts, Log: log,
		Hub: chathub.New(ctx, js, store, st.render, chathub.Config{}, log)})
	if err != nil {
		return err
	}
	ev := events.Event{ID: eventID, End: time.Now().Add(24 * time.Hour)}
	// Profiled (if asked) from the first post to the end of the phase;
	// the stage timings are printed at the end of the phase.
	go signalled(cpuprofile, st)
	return listen(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.URL.Query().Get("user")
		m := events.Member{EventID: eventID, UserID: "u" + n, Email: participantEmail(n), RegistrationID: "r" + n, Name: "Participant " + n}
		h.Serve(w, r, m, ev, events.MainRoom, nil)
	}))
}

// runNATS is the bench's NATS server with JetStream, storing in dir; it
// prints its client URL as its first line.
func runNATS(dir string) error {
	ns, err := natsserver.Start(natsserver.Config{Name: "chatbench", StoreDir: filepath.Join(dir, "nats"), Host: "127.0.0.1", Port: -1})
	if err != nil {
		return err
	}
	fmt.Println(ns.ClientURL())
	ns.WaitForShutdown()
	return nil
}

// runBare is the baseline: one process holding every socket, assigning
// sequence numbers itself and writing each 100 ms slot's messages as one
// frame (rendered like jetfleet's) to every socket, with nothing stored.
func runBare() error {
	type conn struct {
		c     *websocket.Conn
		frame chan []byte
	}
	var (
		mu      sync.Mutex
		conns   = map[*conn]struct{}{}
		pending [][]byte
		seq     uint64
	)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		for range t.C {
			mu.Lock()
			if len(pending) == 0 {
				mu.Unlock()
				continue
			}
			var b bytes.Buffer
			b.WriteString(`{"type":"messages","items":[`)
			b.Write(bytes.Join(pending, []byte(",")))
			b.WriteString(`]}`)
			pending = nil
			f := b.Bytes()
			for c := range conns {
				select {
				case c.frame <- f:
				default: // too far behind: dropped, as jetfleet closes it
					c.c.CloseNow()
				}
			}
			mu.Unlock()
		}
	}()
	return listen(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer c.CloseNow()
		n := r.URL.Query().Get("user")
		cn := &conn{c: c, frame: make(chan []byte, 64)}
		mu.Lock()
		conns[cn] = struct{}{}
		mu.Unlock()
		defer func() { mu.Lock(); delete(conns, cn); mu.Unlock() }()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"hello"}`))
		go func() {
			defer cancel()
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				var req struct{ ID, Text string }
				if json.Unmarshal(data, &req) != nil {
					continue
				}
				mu.Lock()
				seq++
				m := chat.Message{ID: seq, EventID: "bare", Room: "main", UserID: "u" + n, Name: "Participant " + n, Text: req.Text, At: time.Now(), ClientID: req.ID}
				pending = append(pending, webchat.Render(m))
				mu.Unlock()
			}
		}()
		for {
			select {
			case f := <-cn.frame:
				if c.Write(ctx, websocket.MessageText, f) != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}))
}

// proc is a started edge or bare process.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	edge   bool
	stages chan map[string][]int64 // an edge's stage timings, at SIGUSR2
}

func start(args ...string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("%v: no address: %w", args, err)
	}
	p := &proc{cmd: cmd, addr: strings.TrimSpace(line), stages: make(chan map[string][]int64, 1), edge: args[0] == "-edge"}
	go func() {
		sc := bufio.NewScanner(br)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			if b, ok := bytes.CutPrefix(sc.Bytes(), []byte("stages ")); ok {
				var st map[string][]int64
				if json.Unmarshal(b, &st) == nil {
					p.stages <- st
				}
			}
		}
		io.Copy(io.Discard, br)
	}()
	return p, nil
}

func (p *proc) stop() { p.cmd.Process.Kill(); p.cmd.Wait() }

// cpu is the process's user+system CPU time so far.
func cpu(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// result is one phase's figures.
type result struct {
	name                       string
	clients, held, heldEnd     int
	load0, load1               string
	posted, complete           int
	deliveries, frames, errors int64
	seconds                    float64
	p50, p99, allP50, allP99   time.Duration
	edgeCPU, genCPU, natsCPU   time.Duration
	memPerConn                 float64
	closed                     string
	stages                     []stage
}

// stage is one part of a message's way, per message (p50/p99 over
// messages delivered to every connection; the edges' over both edges).
type stage struct {
	name     string
	p50, p99 time.Duration
}

func (r result) perSec(n int64) float64 { return float64(n) / r.seconds }

func (r result) print() {
	fmt.Printf("\n== %s ==\n", r.name)
	fmt.Printf("machine load average   %s at the start, %s at the end (2 cores shared with other work)\n", r.load0, r.load1)
	fmt.Printf("connections held       %d of %d connected, %d still at the end (closed early: %s)\n", r.held, r.clients, r.heldEnd, r.closed)
	fmt.Printf("messages posted        %d (%.0f/s); delivered to every connection: %d (%.1f%%); error frames %d\n",
		r.posted, float64(r.posted)/r.seconds, r.complete, 100*float64(r.complete)/float64(max(1, r.posted)), r.errors)
	fmt.Printf("messages delivered     %.0f/s (message × socket)\n", r.perSec(r.deliveries))
	fmt.Printf("frames delivered       %.0f/s (%.1f messages a frame)\n", r.perSec(r.frames), float64(r.deliveries)/float64(max(1, r.frames)))
	fmt.Printf("latency post→socket    p50 %v  p99 %v (every delivery)\n", r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond))
	fmt.Printf("latency post→every socket p50 %v  p99 %v (per message, its last delivery)\n", r.allP50.Round(time.Millisecond), r.allP99.Round(time.Millisecond))
	for _, st := range r.stages {
		fmt.Printf("  stage %-62s p50 %v  p99 %v\n", st.name, st.p50.Round(time.Millisecond), st.p99.Round(time.Millisecond))
	}
	fmt.Printf("server CPU             %.2fs = %.2f µs per delivered message, %.1f µs per frame (%.0f%% of a core)\n",
		r.edgeCPU.Seconds(), float64(r.edgeCPU.Microseconds())/float64(max(1, r.deliveries)),
		float64(r.edgeCPU.Microseconds())/float64(max(1, r.frames)), 100*r.edgeCPU.Seconds()/r.seconds)
	fmt.Printf("load generator CPU     %.2fs = %.1f µs per frame (%.0f%% of a core)\n", r.genCPU.Seconds(),
		float64(r.genCPU.Microseconds())/float64(max(1, r.frames)), 100*r.genCPU.Seconds()/r.seconds)
	if r.natsCPU > 0 {
		fmt.Printf("NATS server CPU        %.2fs (%.0f%% of a core)\n", r.natsCPU.Seconds(), 100*r.natsCPU.Seconds()/r.seconds)
	}
	fmt.Printf("memory per connection  %.1f KiB (server RSS growth / connections)\n", r.memPerConn/1024)
}

// tallyShards spreads the readers' per-message counts: 5,000 readers
// adding to one counter per message (all at the same moment, as a frame
// reaches every socket) contend for its cache line; each shard is shared
// by a sixteenth of them, summed at the end.
const tallyShards = 16

// tally is one shard of the load generator's counts. Arrival times are
// Unix nanoseconds; per message, the earliest and latest arrival and the
// poster's acknowledgement.
type tally struct {
	got                      []atomic.Int32
	first, last, ack         []atomic.Int64
	hist                     []atomic.Int64 // post → socket, every delivery, 1 ms buckets
	deliveries, frames, errs atomic.Int64
}

func newTally(total int) *tally {
	return &tally{got: make([]atomic.Int32, total), first: make([]atomic.Int64, total), last: make([]atomic.Int64, total),
		ack: make([]atomic.Int64, total), hist: make([]atomic.Int64, histMS)}
}

// frame counts a messages frame that arrived at now. Items carry the
// client id "p<k>" of message k.
func (t *tally) frame(data []byte, now int64, total int, postAt []atomic.Int64) {
	t.frames.Add(1)
	n := int64(0)
	for rest := data; ; {
		i := bytes.Index(rest, []byte(`"cid":"p`))
		if i < 0 {
			break
		}
		rest = rest[i+8:]
		k := 0
		for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
			k = k*10 + int(rest[0]-'0')
			rest = rest[1:]
		}
		if k >= total {
			continue
		}
		n++
		t.got[k].Add(1)
		for {
			old := t.first[k].Load()
			if (old != 0 && old <= now) || t.first[k].CompareAndSwap(old, now) {
				break
			}
		}
		for {
			old := t.last[k].Load()
			if now <= old || t.last[k].CompareAndSwap(old, now) {
				break
			}
		}
		t.hist[bucket(now-postAt[k].Load())].Add(1)
	}
	t.deliveries.Add(n)
}

// other counts a frame that is not messages: an error, or the ack of a
// post ({"id":"p<k>",…,"type":"ack"}: JSON objects of maps have sorted keys).
func (t *tally) other(data []byte, now int64, total int) {
	switch {
	case bytes.Contains(data, []byte(`"type":"error"`)):
		t.errs.Add(1)
	case bytes.Contains(data, []byte(`"type":"ack"`)):
		i := bytes.Index(data, []byte(`"id":"p`))
		if i < 0 {
			return
		}
		k, err := strconv.Atoi(string(data[i+7 : i+7+bytes.IndexByte(data[i+7:], '"')]))
		if err == nil && k < total {
			t.ack[k].Store(now)
		}
	}
}

// loadavg is the machine's 1-minute load average: figures taken while
// other work runs are not comparable with quiet ones.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure connects clients round-robin to servers (path /?user=N), posts
// rate messages a second for d, and reads every frame.
func measure(name string, servers []*proc, clients int, rate float64, d time.Duration, genprofile string, natsd *proc) (result, error) {
	res := result{name: name, clients: clients}
	var rss0 int64
	for _, s := range servers {
		r, _ := benchenv.ProcMemory(s.cmd.Process.Pid)
		rss0 += r
	}
	total := int(rate*d.Seconds()) + 1
	postAt := make([]atomic.Int64, total)
	ts := make([]*tally, tallyShards)
	for i := range ts {
		ts[i] = newTally(total)
	}
	var held atomic.Int32
	var closedMu sync.Mutex
	closed := map[string]int{} // why connections ended before the bench did

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conns := make([]*client, clients)
	var hello sync.WaitGroup
	var connWG sync.WaitGroup
	t0 := time.Now()
	for i := range clients {
		hello.Add(1)
		c, err := dial(servers[i%len(servers)].addr, fmt.Sprintf("/?user=%d", i))
		if err != nil {
			hello.Done()
			fmt.Fprintf(os.Stderr, "client %d: %v\n", i, err)
			continue
		}
		conns[i] = c
		held.Add(1)
		connWG.Add(1)
		t := ts[i%tallyShards]
		go func() {
			defer connWG.Done()
			first := true
			for {
				data, err := c.read()
				if err != nil {
					held.Add(-1)
					if ctx.Err() == nil {
						why := "read error"
						if ce, ok := err.(closeError); ok {
							why = ce.code.String()
						}
						closedMu.Lock()
						closed[why]++
						closedMu.Unlock()
					}
					if first {
						hello.Done()
					}
					return
				}
				now := time.Now().UnixNano()
				if first {
					first = false
					hello.Done()
					continue
				}
				if !bytes.HasPrefix(data, []byte(`{"type":"messages"`)) {
					t.other(data, now, total)
					continue
				}
				t.frame(data, now, total, postAt)
			}
		}()
	}
	hello.Wait()
	res.held = int(held.Load())
	fmt.Printf("%s: %d connections in %v\n", name, res.held, time.Since(t0).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // let the servers settle before reading memory
	var rss1 int64
	cpu0 := time.Duration(0)
	for _, s := range servers {
		r, _ := benchenv.ProcMemory(s.cmd.Process.Pid)
		rss1 += r
		cpu0 += cpu(s.cmd.Process.Pid)
	}
	res.memPerConn = float64(rss1-rss0) / float64(max(1, res.held))
	gen0 := selfCPU()
	var nats0 time.Duration
	if natsd != nil {
		nats0 = cpu(natsd.cmd.Process.Pid)
	}
	res.load0 = loadavg()
	for _, s := range servers {
		s.cmd.Process.Signal(syscall.SIGUSR1) // starts a CPU profile if asked for
	}
	if genprofile != "" {
		if f, err := os.Create(genprofile); err == nil {
			pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}

	// Post: message k from client k mod clients, at the steady rate. Its
	// text starts with k and the post time, which edges read to time the
	// stages before the fan-out.
	start := time.Now()
	text := strings.Repeat("lorem ipsum ", 8)
	k := 0
	for time.Since(start) < d {
		due := min(total, int(rate*time.Since(start).Seconds())+1)
		for ; k < due; k++ {
			c := conns[k%clients]
			if c == nil {
				continue
			}
			at := time.Now().UnixNano()
			postAt[k].Store(at)
			b := fmt.Appendf(nil, `{"type":"post","id":"p%d","text":"%d %d %s"}`, k, k, at, text)
			go c.writeText(b)
		}
		time.Sleep(2 * time.Millisecond)
	}
	res.posted = k
	got := func(i int) int32 {
		var n int32
		for _, t := range ts {
			n += t.got[i].Load()
		}
		return n
	}
	// Wait for the last deliveries (at most 10 s).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		done := true
		for i := range res.posted {
			if got(i) < held.Load() {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.seconds = time.Since(start).Seconds()
	res.load1 = loadavg()
	for _, s := range servers {
		s.cmd.Process.Signal(syscall.SIGUSR2)
	}
	if genprofile != "" {
		pprof.StopCPUProfile()
	}
	res.heldEnd = int(held.Load())
	for _, s := range servers {
		res.edgeCPU += cpu(s.cmd.Process.Pid)
	}
	res.edgeCPU -= cpu0
	res.genCPU = selfCPU() - gen0
	if natsd != nil {
		res.natsCPU = cpu(natsd.cmd.Process.Pid) - nats0
	}
	hist, toAck := make([]int64, histMS), make([]int64, histMS)
	toFirst, firstToAll := make([]int64, histMS), make([]int64, histMS)
	for _, t := range ts {
		res.deliveries += t.deliveries.Load()
		res.frames += t.frames.Load()
		res.errors += t.errs.Load()
		for i := range hist {
			hist[i] += t.hist[i].Load()
		}
	}
	closedMu.Lock()
	res.closed = fmt.Sprint(closed)
	closedMu.Unlock()
	h := int32(held.Load())
	var alls []int64
	for i := range res.posted {
		if got(i) < h {
			continue
		}
		res.complete++
		var firstAt, lastAt, ackAt int64
		for _, t := range ts {
			if f := t.first[i].Load(); f != 0 && (firstAt == 0 || f < firstAt) {
				firstAt = f
			}
			lastAt = max(lastAt, t.last[i].Load())
			ackAt = max(ackAt, t.ack[i].Load())
		}
		posted := postAt[i].Load()
		alls = append(alls, lastAt-posted)
		toFirst[bucket(firstAt-posted)]++
		firstToAll[bucket(lastAt-firstAt)]++
		if ackAt != 0 {
			toAck[bucket(ackAt-posted)]++
		}
	}
	sort.Slice(alls, func(a, b int) bool { return alls[a] < alls[b] })
	if n := len(alls); n > 0 {
		res.allP50, res.allP99 = time.Duration(alls[n/2]), time.Duration(alls[n*99/100])
	}
	res.p50, res.p99 = percentile(hist, 0.5), percentile(hist, 0.99)
	res.stages = append(res.stages,
		stage{"post → ack to the poster (rate limit, store, engagement)", percentile(toAck, 0.5), percentile(toAck, 0.99)},
		stage{"post → first socket", percentile(toFirst, 0.5), percentile(toFirst, 0.99)},
		stage{"first socket → every socket (fan-out spread)", percentile(firstToAll, 0.5), percentile(firstToAll, 0.99)})
	// The edges' own timings (none from the bare broadcaster).
	edge := map[string][]int64{}
	for _, s := range servers {
		if !s.edge {
			continue
		}
		select {
		case st := <-s.stages:
			for k, v := range st {
				if edge[k] == nil {
					edge[k] = make([]int64, histMS)
				}
				for i := range min(len(v), histMS) {
					edge[k][i] += v[i]
				}
			}
		case <-time.After(5 * time.Second):
		}
	}
	if st := edge["stamp"]; st != nil {
		res.stages = append(res.stages,
			stage{"edge: post → stamped by the store (read, recheck, rate limit)", percentile(st, 0.5), percentile(st, 0.99)},
			stage{"edge: stamped → room consumer (stored publish, delivery)", percentile(edge["consumer"], 0.5), percentile(edge["consumer"], 0.99)})
	}
	cancel()
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
	connWG.Wait()
	return res, nil
}

// signalled profiles the edge's CPU into file (if not empty) from
// SIGUSR1 to SIGUSR2, which the orchestrator sends around the posting
// phase, and at SIGUSR2 prints the edge's stage timings as one stdout line
// ("stages " and JSON) for the orchestrator.
func signalled(file string, st *edgeStages) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	<-sig
	var f *os.File
	if file != "" {
		var err error
		if f, err = os.Create(file); err != nil {
			fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		} else {
			pprof.StartCPUProfile(f)
		}
	}
	<-sig
	if f != nil {
		pprof.StopCPUProfile()
		f.Close()
	}
	b, _ := json.Marshal(st.snapshot())
	fmt.Printf("stages %s\n", b)
}

// edgeStages times, on an edge, the stages a message passes before the
// hub fans it out, from the post time the load generator writes into
// each message's text ("<k> <unix ns> …") and the time the store stamps
// on it (chat.Message.At, just before the stored publish): post → stamped
// (the socket read, membership recheck and shared rate limit) and stamped
// → rendered in the room's consumer (the stored publish and the ordered
// consumer's delivery). Render runs once per message and edge, in the
// room's consumer callback.
type edgeStages struct {
	mu                  sync.Mutex
	toStamp, toConsumer []int64 // 1 ms buckets
}

func newEdgeStages() *edgeStages {
	return &edgeStages{toStamp: make([]int64, histMS), toConsumer: make([]int64, histMS)}
}

func (s *edgeStages) render(m chat.Message) []byte {
	now := time.Now()
	if f := strings.SplitN(m.Text, " ", 3); len(f) == 3 {
		if posted, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			s.mu.Lock()
			s.toStamp[bucket(m.At.UnixNano()-posted)]++
			s.toConsumer[bucket(now.Sub(m.At).Nanoseconds())]++
			s.mu.Unlock()
		}
	}
	return webchat.Render(m)
}

func (s *edgeStages) snapshot() map[string][]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string][]int64{"stamp": append([]int64(nil), s.toStamp...), "consumer": append([]int64(nil), s.toConsumer...)}
}

// histMS is the latency histograms' span: 1 ms buckets up to a minute.
const histMS = 60_000

func bucket(ns int64) int { return min(max(0, int(ns/int64(time.Millisecond))), histMS-1) }

// percentile is the upper bound of the bucket holding the q-th quantile
// of hist.
func percentile(hist []int64, q float64) time.Duration {
	var sum int64
	for _, n := range hist {
		sum += n
	}
	if sum == 0 {
		return 0
	}
	var acc int64
	for i, n := range hist {
		acc += n
		if float64(acc) >= q*float64(sum) {
			return time.Duration(i+1) * time.Millisecond
		}
	}
	return histMS * time.Millisecond
}

func run(clients, edges int, rate float64, d time.Duration, skipBare bool, cpuprofile, genprofile string) error {
	ctx := context.Background()
	fmt.Printf("chatbench: %d clients over %d edge processes, %.0f messages/s for %v, one event's main room\n", clients, edges, rate, d)
	fmt.Println("(the load generator runs on the same machine and competes with the servers for CPU)")
	var bareRes result
	if !skipBare {
		b, err := start("-bare")
		if err != nil {
			return err
		}
		bareRes, err = measure("bare coder/websocket broadcaster (1 process, no NATS, no storage)", []*proc{b}, clients, rate, d, withSuffix(genprofile, ".bare"), nil)
		b.stop()
		if err != nil {
			return err
		}
		bareRes.print()
	}
	// NATS runs in a process of its own, as in production: embedded in
	// this one, its goroutines queued behind the 5,000 readers' at every
	// fan-out, and each post's round trips waited for them.
	dir, err := os.MkdirTemp("", "jetfleet-chatbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := start("-natsd", dir)
	if err != nil {
		return err
	}
	defer ns.stop()
	nc, err := nats.Connect(ns.addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	eventID, err := liveEventWithParticipants(ctx, js, clients)
	if err != nil {
		return err
	}
	var servers []*proc
	for range edges {
		args := []string{"-edge", "-nats", ns.addr, "-event", eventID}
		if cpuprofile != "" && len(servers) == 0 {
			args = append(args, "-cpuprofile", cpuprofile)
		}
		p, err := start(args...)
		if err != nil {
			return err
		}
		defer p.stop()
		servers = append(servers, p)
	}
	res, err := measure(fmt.Sprintf("jetfleet: %d edge processes, web/chat + web/chathub on JetStream", edges), servers, clients, rate, d, genprofile, ns)
	if err != nil {
		return err
	}
	res.print()
	if !skipBare {
		fmt.Printf("\n== ratios (jetfleet / bare) ==\n")
		fmt.Printf("messages delivered/s   %.2f× (target ≥ 0.8×)\n", res.perSec(res.deliveries)/bareRes.perSec(bareRes.deliveries))
		fmt.Printf("CPU per delivery       %.2f×\n", (res.edgeCPU.Seconds()/float64(max(1, res.deliveries)))/(bareRes.edgeCPU.Seconds()/float64(max(1, bareRes.deliveries))))
		fmt.Printf("memory per connection  %.2f×\n", res.memPerConn/bareRes.memPerConn)
	}
	perConnCPU := res.edgeCPU.Seconds() / res.seconds / float64(max(1, res.held))
	fmt.Printf("\n15,000 participants at 2 messages a minute each (500 msg/s): fan-out grows with sockets × frames (10 a second each),\n")
	fmt.Printf("so measured cost per connection × 15,000: %.2f cores, %.0f MiB\n", perConnCPU*15000, res.memPerConn*15000/(1<<20))
	return nil
}

func withSuffix(file, suffix string) string {
	if file == "" {
		return ""
	}
	return file + suffix
}

// participantEmail is the address of the bench's participant n.
func participantEmail(n string) string { return "p" + n + "@bench.example" }

// liveEventWithParticipants publishes an event with n confirmed
// participants (participantEmail(0…n-1)), as the site would have them, so
// the chat's membership rechecks find real registrations.
func liveEventWithParticipants(ctx context.Context, js jetstream.JetStream, n int) (string, error) {
	svc, err := events.Open(ctx, js, events.Config{})
	if err != nil {
		return "", err
	}
	const organiser = "bench-organiser"
	start := time.Now().Add(time.Hour).UTC()
	e, err := svc.CreateEvent(ctx, organiser, events.EventInput{
		Title: "chatbench", Description: "chat fan-out bench", BusinessType: "technology",
		Start: start.Format(events.FormTime), End: start.Add(24 * time.Hour).Format(events.FormTime),
		TimeZone: "UTC", Capacity: strconv.Itoa(n),
	})
	if err != nil {
		return "", fmt.Errorf("create the bench event: %w", err)
	}
	if e, err = svc.AddTicketType(ctx, organiser, e.ID, events.TicketInput{Name: "Free", Price: "0", Quantity: strconv.Itoa(n)}); err != nil {
		return "", fmt.Errorf("add its ticket: %w", err)
	}
	if e, err = svc.Publish(ctx, organiser, e.ID); err != nil {
		return "", fmt.Errorf("publish it: %w", err)
	}
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			email := participantEmail(strconv.Itoa(i))
			r, err := svc.Register(gctx, e.ID, events.RegistrationInput{TicketTypeID: e.Tickets[0].ID, Name: "Participant " + strconv.Itoa(i), Email: email, Terms: true, DataSharing: true})
			if err != nil {
				return fmt.Errorf("register %s: %w", email, err)
			}
			if _, err := svc.Confirm(gctx, email, e.ID, r.ID); err != nil {
				return fmt.Errorf("confirm %s: %w", email, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	fmt.Printf("%d participants registered and confirmed in %.1fs\n", n, time.Since(began).Seconds())
	return e.ID, nil
}
