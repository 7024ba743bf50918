// Command enricherbench is the Enricher's benchmark harness (`make
// bench-enricher`). It starts a NATS server as its own process (so its memory
// and disk can be measured apart from the Enricher), bulk-loads users and
// subscriptions with the same loader as `jetfleet enricher load`, runs the
// Enricher in this process, then streams lessons (with a trickle of user and
// subscription updates) and prints throughput, input→output latency, cache
// hit rate, memory and state-store bytes per row, and an extrapolation to
// 500M rows. It prints figures; it asserts nothing.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/benchenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/enricher"
)

var (
	languages = []string{"en", "es", "fr", "de", "it", "pt", "ja", "ru"}
	countries = []string{"DE", "FR", "ES", "US", "GB", "BR", "IT", "PL", "NL", "JP"}
	types     = []string{"free", "basic", "premium", "family"}
	statuses  = []string{"active", "trial", "cancelled", "expired"}
)

type options struct {
	server      string
	users       int
	subsPerUser int
	lessons     int
	rates       []int
	latencyFor  time.Duration
	cache       int
	hotShare    float64
	cpuProfile  string
	srvProfile  string
	gogc        int
	floor       bool
	bare        bool
	shards      int
	cluster     int
}

func main() {
	var o options
	flag.StringVar(&o.server, "nats-server", "bin/nats-server", "nats-server binary (go build -o bin/nats-server github.com/nats-io/nats-server/v2)")
	flag.IntVar(&o.users, "users", 1_000_000, "users to preload")
	flag.IntVar(&o.subsPerUser, "subs", 2, "subscriptions per user (languages)")
	flag.IntVar(&o.lessons, "lessons", 600_000, "lessons in the throughput phase")
	rates := flag.String("rate", "625,5000,10000,25000", "lessons/s offered in the latency phases, one phase per comma-separated rate (625/s is the seed's peak; 25,000/s the target)")
	flag.DurationVar(&o.latencyFor, "latency-for", 15*time.Second, "length of the latency phase")
	flag.IntVar(&o.cache, "cache", 500_000, "enricher cache entries")
	flag.Float64Var(&o.hotShare, "hot", 0.1, "share of users that complete 90% of the lessons")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the throughput phase to this file")
	flag.StringVar(&o.srvProfile, "server-cpuprofile", "", "write a CPU profile of nats-server over the first 20s of the throughput phase to this file, and one of each latency phase to this file.<rate>")
	flag.IntVar(&o.gogc, "gogc", 400, "GOGC of this process (the Enricher's), set in-process so nats-server keeps its own; -1 keeps the environment's")
	flag.BoolVar(&o.floor, "floor", true, "finally, run the throughput phase again with a handler that only republishes (no parsing, no state): the floor the streams, consumers and runtime set on this machine")
	flag.BoolVar(&o.bare, "bare", true, "finally, measure bare JetStream on this machine (one stream, one consumer): the server CPU of each step a lesson takes, and the most lessons/s those steps allow on all cores")
	flag.IntVar(&o.shards, "shards", subjects.DefaultEnricherStateShards, "KV buckets per kind of state (ENRICHER_STATE_SHARDS)")
	flag.IntVar(&o.cluster, "cluster", 1, "nats-servers to run: 1, or a cluster (3) with every stream, consumer and bucket replicated on each (R3); the bare phase then measures R1 and R3 streams on it")
	flag.Parse()
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "enricherbench: -rate: %q is not a positive number\n", r)
			os.Exit(2)
		}
		o.rates = append(o.rates, n)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "enricherbench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx := context.Background()
	gogc := "environment"
	if o.gogc >= 0 {
		// The Enricher's live heap is mostly its state cache: the default
		// GOGC=100 re-marks it every time as much again is allocated (a
		// quarter of the process's CPU in the bench profile).
		debug.SetGCPercent(o.gogc)
		gogc = strconv.Itoa(o.gogc)
	}
	dir, err := os.MkdirTemp("", "enricherbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	profPort := 0
	if o.srvProfile != "" {
		if profPort, err = freePort(); err != nil {
			return err
		}
	}
	srv, err := startServers(o.server, dir, o.cluster, profPort)
	if err != nil {
		return err
	}
	defer srv.stop()
	url := srv.url
	nc, js, err := connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := provision(ctx, js, subjects.Options{EnricherStateShards: o.shards, Replicas: o.cluster}); err != nil {
		return err
	}
	fmt.Printf("enricher bench: %d users, %d subscriptions over %d shards per kind, GOMAXPROCS=%d, GOGC=%s (enricher process), %s\n",
		o.users, o.users*o.subsPerUser, o.shards, runtime.GOMAXPROCS(0), gogc, srv.describe())

	// 1. Bulk load.
	snapshot := filepath.Join(dir, "snapshot.ndjson")
	if err := writeSnapshot(snapshot, o); err != nil {
		return err
	}
	rssBefore, diskBefore := srv.rss(), diskOf(dir)
	f, err := os.Open(snapshot)
	if err != nil {
		return err
	}
	start := time.Now()
	st, err := enricher.Load(ctx, js, f, nil)
	f.Close()
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	loadTime := time.Since(start)
	rows := st.Users + st.Subscriptions
	runtime.GC()
	rssAfter, diskAfter := srv.rss(), diskOf(dir)
	memPerRow := float64(rssAfter-rssBefore) / float64(rows)
	diskPerRow := float64(diskAfter-diskBefore) / float64(rows)
	fmt.Printf("load:        %d rows in %v = %.0f rows/s (%d rejected)\n", rows, loadTime.Round(time.Millisecond), float64(rows)/loadTime.Seconds(), st.RejectedTotal)
	fmt.Printf("state store: server RSS %s → %s, disk %s → %s\n", benchenv.MiB(rssBefore), benchenv.MiB(rssAfter), benchenv.MiB(diskBefore), benchenv.MiB(diskAfter))
	fmt.Printf("             %.0f bytes of server memory and %.0f bytes of disk per row (R%d, all servers)\n", memPerRow, diskPerRow, o.cluster)
	if o.cluster > 1 { // the plan below multiplies one copy by 3
		memPerRow, diskPerRow = memPerRow/float64(o.cluster), diskPerRow/float64(o.cluster)
	}

	// 2. The Enricher, in this process, on its own connection.
	enc, stopEnricher, err := startEnricher(url, o.cache)
	if err != nil {
		return err
	}
	defer stopEnricher()

	// The hot users' state into the Enricher's cache, as a worker that
	// has been running for a while holds it: the figures below are then
	// the steady state rather than a cache filling up.
	start = time.Now()
	warmed := warmCache(ctx, enc.Store(), o)
	fmt.Printf("cache warm:  %d hot users' state records in %v\n", warmed, time.Since(start).Round(time.Millisecond))

	// 3. Output observer.
	obs, err := observe(ctx, js)
	if err != nil {
		return err
	}
	defer obs.stop()

	pnc, pjs, err := connect(url)
	if err != nil {
		return err
	}
	defer pnc.Close()
	gen := newGenerator(o)

	// Warm-up, so the throughput phase measures a steady state.
	warm := min(o.lessons/10, 50_000)
	if err := gen.publish(pjs, warm, 0, 0); err != nil {
		return err
	}
	obs.waitFor(int64(warm), 2*time.Minute)

	// 4. Throughput: offer lessons as fast as publishing allows.
	hits0, miss0 := enc.Store().CacheStats()
	base := obs.lessons.Load()
	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(pf)
		defer pprof.StopCPUProfile()
	}
	var srvProf sync.WaitGroup
	if o.srvProfile != "" {
		srvProf.Go(func() {
			if err := fetchProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=20", profPort), o.srvProfile); err != nil {
				fmt.Fprintln(os.Stderr, "enricherbench: server profile:", err)
			}
		})
	}
	cpuSelf0, cpuSrv0 := cpuOf(os.Getpid()), srv.cpu()
	start = time.Now()
	if err := gen.publish(pjs, o.lessons, 1, 0); err != nil {
		return err
	}
	pubDone := time.Since(start)
	if !obs.waitFor(base+int64(o.lessons), 5*time.Minute) {
		return fmt.Errorf("only %d of %d lessons came out", obs.lessons.Load()-base, o.lessons)
	}
	el := time.Since(start)
	pprof.StopCPUProfile()
	srvProf.Wait()
	hits, miss := enc.Store().CacheStats()
	throughput := float64(o.lessons) / el.Seconds()
	fmt.Printf("throughput:  %d lessons (+%d updates) in %v = %.0f lessons/s (published in %v)\n",
		o.lessons, gen.updates.Load(), el.Round(time.Millisecond), float64(o.lessons)/el.Seconds(), pubDone.Round(time.Millisecond))
	cpuSelf, cpuSrv := cpuOf(os.Getpid())-cpuSelf0, srv.cpu()-cpuSrv0
	fmt.Printf("             CPU: this process %.2f cores, nats-server %.2f cores (%.0f + %.0f µs of CPU per lesson)\n",
		cpuSelf.Seconds()/el.Seconds(), cpuSrv.Seconds()/el.Seconds(),
		float64(cpuSelf.Microseconds())/float64(o.lessons), float64(cpuSrv.Microseconds())/float64(o.lessons))
	fmt.Printf("             saturated latency p50 %v p99 %v (queueing included)\n", obs.quantile(1, 0.5), obs.quantile(1, 0.99))
	hitRate := float64(hits-hits0) / math.Max(1, float64(hits-hits0+miss-miss0))

	// 5. Latency at fixed offered rates: what a pipeline running at that
	// load sees, without the backlog of the saturated phase.
	var p99s []string
	for i, rate := range o.rates {
		phase := 2 + i
		n := int(float64(rate) * o.latencyFor.Seconds())
		base = obs.lessons.Load()
		gen.pauses.Store(0)
		gen.longestPause.Store(0)
		var phaseProf sync.WaitGroup
		if o.srvProfile != "" {
			// A stall in the tail shows in the server's profile of the
			// phase (e.g. a stream writing its full state index).
			phaseProf.Go(func() {
				u := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", profPort, int(o.latencyFor.Seconds()))
				if err := fetchProfile(u, fmt.Sprintf("%s.%d", o.srvProfile, rate)); err != nil {
					fmt.Fprintln(os.Stderr, "enricherbench: server profile:", err)
				}
			})
		}
		start = time.Now()
		if err := gen.publish(pjs, n, phase, rate); err != nil {
			return err
		}
		ok := obs.waitFor(base+int64(n), 2*time.Minute)
		el = time.Since(start)
		p99s = append(p99s, fmt.Sprintf("%d/s %v", rate, obs.quantile(phase, 0.99)))
		phaseProf.Wait()
		fmt.Printf("latency:     %d lessons offered at %d/s, came out at %.0f/s%s: p50 %v, p99 %v, max %v (load generator held up >5ms %d times, longest %v; OUTPUT→observer p50 %v p99 %v)\n",
			n, rate, float64(obs.lessons.Load()-base)/el.Seconds(), map[bool]string{true: "", false: " (NOT ALL CAME OUT)"}[ok],
			obs.quantile(phase, 0.5), obs.quantile(phase, 0.99), obs.quantile(phase, 1),
			gen.pauses.Load(), time.Duration(gen.longestPause.Load()).Round(time.Millisecond),
			obs.quantileOf(obs.tail, phase, 0.5), obs.quantileOf(obs.tail, phase, 0.99))
	}

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := enc.Stats()
	encRSS := rssOf(os.Getpid())
	fmt.Printf("cache:       hit rate %.1f%% in the throughput phase (%d entries, %.0f%% of lessons from %.0f%% of users)\n",
		100*hitRate, o.cache, 90.0, 100*o.hotShare)
	fmt.Printf("enrichment:  %v; state updates applied %d, dead-lettered %v\n", s.Lessons, s.Emitted["user"]+s.Emitted["subscription"], s.Invalid)
	fmt.Printf("memory:      this process (enricher + load generator) RSS %s, Go heap %s; nats-server RSS %s\n",
		benchenv.MiB(encRSS), benchenv.MiB(int64(ms.HeapAlloc)), benchenv.MiB(srv.rss()))
	extrapolate(memPerRow, diskPerRow)
	stopEnricher()
	var floorRate float64
	if o.floor {
		floorProfile := ""
		if o.srvProfile != "" {
			floorProfile = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=20", profPort)
		}
		if floorRate, err = floor(url, pjs, obs, gen, srv, o.lessons, floorProfile, o.srvProfile+".floor"); err != nil {
			return err
		}
	}
	if !o.bare {
		return nil
	}
	bound, err := bare(url, srv, 1)
	if err != nil {
		return fmt.Errorf("bare: %w", err)
	}
	fmt.Printf("summary:     enricher %.0f lessons/s = %.2f × the bare bound of %.0f/s (target ≥ 0.40)", throughput, throughput/bound, bound)
	if floorRate > 0 {
		fmt.Printf("; floor %.0f/s = %.2f × (target ≥ 0.60)", floorRate, floorRate/bound)
	}
	fmt.Printf("\n             p99 at offered rates: %s (targets: ≤ 20ms at 625/s, ≤ 50ms at 5000/s)\n", strings.Join(p99s, ", "))
	if o.cluster > 1 {
		// The same steps on streams replicated on every server: what
		// replication costs the servers per lesson, on this cluster.
		boundR, err := bare(url, srv, o.cluster)
		if err != nil {
			return fmt.Errorf("bare R%d: %w", o.cluster, err)
		}
		fmt.Printf("replication: the four steps cost %.2f× the server CPU at R%d than at R1 (bare bound %.0f/s → %.0f/s on this machine); the enricher reached %.2f × the R%d bound\n",
			bound/boundR, o.cluster, bound, boundR, throughput/boundR, o.cluster)
	}
	return nil
}

// bare measures the server CPU of the JetStream steps every lesson takes, on
// a stream and a consumer of its own with nothing else running: storing an
// event (the input), storing one with a Nats-Msg-Id (the output), delivering
// one with an explicit ack (to the Enricher) and delivering one without (to
// a downstream reader). Their sum bounds any pipeline of this shape on this
// machine, whatever the worker does.
func bare(url string, srv *servers, replicas int) (bound float64, err error) {
	ctx := context.Background()
	nc, js, err := connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_BARE", Subjects: []string{"bare.>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, Replicas: replicas}); err != nil {
		return 0, err
	}
	defer js.DeleteStream(ctx, "BENCH_BARE")
	const n = 200_000
	stored := uint64(0)                    // events in the stream so far: each deliver step reads the last n
	body := bytes.Repeat([]byte("x"), 330) // about a lesson
	perOp := func(f func() error) (float64, error) {
		c0 := srv.cpu()
		if err := f(); err != nil {
			return 0, err
		}
		return float64((srv.cpu() - c0).Microseconds()) / n, nil
	}
	publish := func(withID bool, round int) func() error {
		return func() error {
			for i := range n {
				m := &nats.Msg{Subject: "bare." + strconv.Itoa(i%32), Data: body}
				if withID {
					m.Header = nats.Header{jetstream.MsgIDHeader: {"bare:" + strconv.Itoa(round) + ":" + strconv.Itoa(i)}}
				}
				if err := publishWindowed(js, m); err != nil {
					return err
				}
			}
			<-js.PublishAsyncComplete()
			return nil
		}
	}
	deliver := func(name string, policy jetstream.AckPolicy) func() error {
		return func() error {
			// From the last n stored: the stream holds every round's.
			cons, err := js.CreateConsumer(ctx, "BENCH_BARE", jetstream.ConsumerConfig{Durable: name, AckPolicy: policy, Replicas: replicas,
				DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: stored - n + 1})
			if err != nil {
				return err
			}
			for got := 0; got < n; {
				b, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
				if err != nil {
					return err
				}
				for m := range b.Messages() {
					got++
					if policy == jetstream.AckExplicitPolicy {
						_ = m.Ack()
					}
				}
			}
			return nil
		}
	}
	// Each step three times, its median kept: a single pass of a step
	// (about a second) moved by a quarter from run to run, whenever the
	// server's own background work (state snapshots, flushes) fell in it.
	var pubs, pubIDs, ackeds, unackeds []float64
	for round := range 3 {
		for _, step := range []struct {
			into *[]float64
			f    func() error
			adds bool
		}{
			{&pubs, publish(false, round), true},
			{&pubIDs, publish(true, round), true},
			{&ackeds, deliver("acked"+strconv.Itoa(round), jetstream.AckExplicitPolicy), false},
			{&unackeds, deliver("unacked"+strconv.Itoa(round), jetstream.AckNonePolicy), false},
		} {
			v, err := perOp(step.f)
			if err != nil {
				return 0, err
			}
			*step.into = append(*step.into, v)
			if step.adds {
				stored += n
			}
		}
	}
	pub, pubID, acked, unacked := median(pubs), median(pubIDs), median(ackeds), median(unackeds)
	sum := pub + pubID + acked + unacked
	bound = float64(runtime.NumCPU()) * 1e6 / sum
	fmt.Printf("bare R%d:     nats-server CPU per message (median of 3): store %.1f µs, store with Nats-Msg-Id %.1f µs, deliver + ack %.1f µs, deliver %.1f µs\n", replicas, pub, pubID, acked, unacked)
	fmt.Printf("             each pass: store %s, with Nats-Msg-Id %s, deliver + ack %s, deliver %s\n", passes(pubs), passes(pubIDs), passes(ackeds), passes(unackeds))
	fmt.Printf("             a lesson takes all four: %.1f µs, so %d cores allow at most %.0f lessons/s with no client work at all\n",
		sum, runtime.NumCPU(), bound)
	return bound, nil
}

// median is the middle of three or more figures.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// passes prints each pass's figure of a bare step.
func passes(v []float64) string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strings.Join(out, "/") + " µs"
}

// floor runs the throughput phase again with the Enricher replaced by a
// handler that republishes each event as it came (with the same
// Nats-Msg-Id): same streams, consumers, ordered runtime and load
// generator, no parsing and no state. What it reaches is the most any
// Enricher can reach on this machine with this pipeline.
func floor(url string, pjs jetstream.JetStream, obs *observer, gen *generator, srv *servers, lessons int, profileURL, profilePath string) (float64, error) {
	nc, js, err := connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	pub, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1<<14))
	if err != nil {
		return 0, err
	}
	var names []string
	for p := range subjects.EnricherPartitions {
		names = append(names, subjects.EnricherPartitionConsumer(p))
	}
	cfg := consume.OrderedConfig{Role: "floor", Streams: subjects.EnricherPartitionStreams(), Consumers: names, Group: subjects.EnricherGroup}
	handle := func(_ context.Context, p int, m jetstream.Msg) ([]jetstream.PubAckFuture, error) {
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		f, err := pub.PublishMsgAsync(&nats.Msg{Subject: subjects.EnricherOutput(subjects.EnricherStoredKind(m.Subject())), Data: m.Data(),
			Header: nats.Header{jetstream.MsgIDHeader: {"floor:" + subjects.EnricherInputPos(p, md.Sequence.Stream)}}})
		if err != nil {
			return nil, err
		}
		return []jetstream.PubAckFuture{f}, nil
	}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = consume.NewOrdered(js, cfg, handle, consume.NewMetrics(prometheus.NewRegistry()), log).Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	base := obs.lessons.Load()
	var prof sync.WaitGroup
	defer prof.Wait()
	if profileURL != "" {
		prof.Go(func() {
			if err := fetchProfile(profileURL, profilePath); err != nil {
				fmt.Fprintln(os.Stderr, "enricherbench: floor server profile:", err)
			}
		})
	}
	cpuSelf0, cpuSrv0 := cpuOf(os.Getpid()), srv.cpu()
	start := time.Now()
	if err := gen.publish(pjs, lessons, 99, 0); err != nil {
		return 0, err
	}
	if !obs.waitFor(base+int64(lessons), 5*time.Minute) {
		return 0, fmt.Errorf("floor: only %d of %d lessons came out", obs.lessons.Load()-base, lessons)
	}
	el := time.Since(start)
	cpuSelf, cpuSrv := cpuOf(os.Getpid())-cpuSelf0, srv.cpu()-cpuSrv0
	fmt.Printf("floor:       republish only (no parsing, no state): %.0f lessons/s; %.0f + %.0f µs of CPU per lesson (this process + nats-server)\n",
		float64(lessons)/el.Seconds(), float64(cpuSelf.Microseconds())/float64(lessons), float64(cpuSrv.Microseconds())/float64(lessons))
	return float64(lessons) / el.Seconds(), nil
}

// extrapolate prints the plan for 500M state rows from the measured bytes
// per row.
func extrapolate(memPerRow, diskPerRow float64) {
	const rows = 500e6
	const replicas = 3
	const serverMem = 64 << 30 // a 64 GiB server, half of it for JetStream state
	const usable = serverMem / 2
	const perBucket = 32e6 // keys per bucket we are willing to recover/compact as one stream
	mem := memPerRow * rows * replicas
	disk := diskPerRow * rows * replicas
	shards := int(math.Ceil(rows / 2 / perBucket)) // users and subscriptions each get shards buckets
	shards = 1 << int(math.Ceil(math.Log2(float64(shards))))
	servers := max(3, int(math.Ceil(mem/usable)))
	fmt.Printf("500M rows:   R3 → %.0f GiB server memory, %.0f GiB disk; %d shards per kind (≤%.0fM keys per bucket); %d servers of 64 GiB (half for state)\n",
		mem/(1<<30), disk/(1<<30), shards, perBucket/1e6, servers)
}

type generator struct {
	o       options
	rnd     *rand.Rand
	updates atomic.Int64
	// Publishes that waited over 5ms for the async window, and the longest.
	pauses, longestPause atomic.Int64
}

func newGenerator(o options) *generator {
	return &generator{o: o, rnd: rand.New(rand.NewPCG(1, 2))}
}

func (g *generator) user() int {
	if g.rnd.Float64() < 0.9 {
		return g.rnd.IntN(max(1, int(float64(g.o.users)*g.o.hotShare)))
	}
	return g.rnd.IntN(g.o.users)
}

// publish sends n lessons tagged with phase, one update per 200 lessons;
// rate 0 means as fast as the client's async window allows.
func (g *generator) publish(js jetstream.JetStream, n, phase, rate int) error {
	start := time.Now()
	// Pace in steps of about a millisecond: coarser steps send bursts whose
	// queueing shows as latency the offered rate would not cause.
	step := max(1, rate/1000)
	for i := range n {
		if rate > 0 && i%step == 0 {
			due := start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d) // pacing the offered load, not waiting for a result
			}
		}
		u := g.user()
		id := userID(u)
		if i%200 == 199 {
			var subj, body string
			if i%400 == 399 {
				subj = subjects.EnricherInput(subjects.EnricherKindUser, id)
				body = fmt.Sprintf(`{"operation":"update","uuid":"%s","country":"%s"}`, id, countries[g.rnd.IntN(len(countries))])
			} else {
				subj = subjects.EnricherInput(subjects.EnricherKindSubscription, id)
				body = fmt.Sprintf(`{"operation":"update","user_uuid":"%s","language":"%s","subscription_status":"%s"}`, id, langOf(u, 0, g.o.subsPerUser), statuses[g.rnd.IntN(len(statuses))])
			}
			if err := g.publishAsync(js, subj, []byte(body)); err != nil {
				return err
			}
			g.updates.Add(1)
		}
		body := fmt.Sprintf(`{"user_uuid":"%s","language":"%s","title":"Lesson %d","course_uuid":"c-%d","course_title":"Course","number_of_lessons_in_course":20,"completed_lessons_in_course":%d,"percentage_completed_in_course":%d,"content_release_id":"r42","phase":%d,"sent_ns":%d}`,
			id, langOf(u, g.rnd.IntN(g.o.subsPerUser), g.o.subsPerUser), i%20, u%500, i%20+1, (i%20+1)*5, phase, time.Now().UnixNano())
		if err := g.publishAsync(js, subjects.EnricherInput(subjects.EnricherKindLesson, id), []byte(body)); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("publishes not confirmed within a minute")
	}
}

// publishAsync waits out a full window of unacknowledged publishes. A
// publish held up by the window delays the lessons stamped before it, so
// such pauses are counted: they show as latency the Enricher did not cause.
func (g *generator) publishAsync(js jetstream.JetStream, subject string, data []byte) error {
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > 5*time.Millisecond {
			g.pauses.Add(1)
			if d > time.Duration(g.longestPause.Load()) {
				g.longestPause.Store(int64(d))
			}
		}
	}()
	return publishWindowed(js, &nats.Msg{Subject: subject, Data: data})
}

// publishWindowed publishes m asynchronously, first waiting out a full
// window of unacknowledged publishes.
func publishWindowed(js jetstream.JetStream, m *nats.Msg) error {
	for {
		_, err := js.PublishMsgAsync(m)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return err
		}
		<-js.PublishAsyncComplete()
	}
}

func userID(u int) string { return fmt.Sprintf("user-%07d", u) }

// langOf is the k-th subscription language of user u.
func langOf(u, k, subs int) string {
	_ = subs // k < subs ≤ len(languages) keeps a user's languages distinct
	return languages[(u+k)%len(languages)]
}

func writeSnapshot(path string, o options) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for u := range o.users {
		id := userID(u)
		fmt.Fprintf(w, `{"uuid":"%s","name":"user%d","firstname":"First%d","lastname":"Last%d","country":"%s","active":true}`+"\n",
			id, u, u, u, countries[u%len(countries)])
		for k := range o.subsPerUser {
			fmt.Fprintf(w, `{"user_uuid":"%s","language":"%s","name":"sub","subscription_status":"%s","subscription_type":"%s","subscription_period":30}`+"\n",
				id, langOf(u, k, o.subsPerUser), statuses[(u+k)%len(statuses)], types[(u/3+k)%len(types)])
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func startEnricher(url string, cache int) (*enricher.Enricher, func(), error) {
	nc, js, err := connect(url)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	e, err := enricher.New(ctx, js, enricher.Config{CacheSize: cache}, prometheus.NewRegistry(), log)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	c := consume.NewOrdered(js, e.OrderedConfig("enricher"), e.Handle, consume.NewMetrics(prometheus.NewRegistry()), log)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	var once sync.Once
	return e, func() { once.Do(func() { cancel(); <-done; _ = e.Close(); nc.Close() }) }, nil
}

// observer reads OUTPUT lessons and records input→output latency by phase.
type observer struct {
	lessons atomic.Int64
	mu      sync.Mutex
	lat     map[int][]time.Duration
	// tail is, by phase, the part of lat after OUTPUT stored the lesson:
	// the observer's own delay, not the pipeline's.
	tail map[int][]time.Duration
	cc   jetstream.ConsumeContext
}

func observe(ctx context.Context, js jetstream.JetStream) (*observer, error) {
	o := &observer{lat: map[int][]time.Duration{}, tail: map[int][]time.Duration{}}
	cons, err := js.OrderedConsumer(ctx, subjects.EnricherOutputStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.EnricherOutput(subjects.EnricherKindLesson)}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, err
	}
	o.cc, err = cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		// Cheap field scans: the observer shares the CPU with the Enricher.
		phase, sent := intField(m.Data(), `"phase":`), intField(m.Data(), `"sent_ns":`)
		var tail time.Duration
		if md, err := m.Metadata(); err == nil {
			tail = now.Sub(md.Timestamp)
		}
		o.mu.Lock()
		o.lat[int(phase)] = append(o.lat[int(phase)], now.Sub(time.Unix(0, sent)))
		o.tail[int(phase)] = append(o.tail[int(phase)], tail)
		o.mu.Unlock()
		o.lessons.Add(1)
	})
	return o, err
}

// intField returns the integer after key in data, 0 when absent.
func intField(data []byte, key string) int64 {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0
	}
	var n int64
	for _, c := range data[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

func (o *observer) stop() { o.cc.Stop() }

// waitFor polls until n lessons came out or d passed.
func (o *observer) waitFor(n int64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for o.lessons.Load() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond) // polling a counter in a harness, not a test
	}
	return true
}

func (o *observer) quantile(phase int, q float64) time.Duration {
	return o.quantileOf(o.lat, phase, q)
}

func (o *observer) quantileOf(lat map[int][]time.Duration, phase int, q float64) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := slices.Clone(lat[phase])
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	i := min(len(l)-1, int(q*float64(len(l))))
	return l[i].Round(10 * time.Microsecond)
}

func connect(url string) (*nats.Conn, jetstream.JetStream, error) {
	var nc *nats.Conn
	var err error
	for range 100 {
		if nc, err = nats.Connect(url); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond) // the server process is starting
	}
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return nil, nil, err
	}
	return nc, js, nil
}

// fetchProfile saves the pprof profile served at url to path.
func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rssOf is the resident memory of process pid, in bytes.
func rssOf(pid int) int64 {
	rss, _ := benchenv.ProcMemory(pid)
	return rss
}

// cpuOf is the CPU time process pid used so far (user + system).
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// diskOf is the size of the files under dir, in bytes.
func diskOf(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// servers are the nats-server processes of the bench: one, or a cluster.
type servers struct {
	procs []*exec.Cmd
	url   string // every server's client URL, comma-separated
}

// startServers starts n nats-servers (a cluster when n > 1) with the
// account mapping that partitions the Enricher's input, which a self-hosted
// server has in its configuration file. profPort, when set, serves the
// first server's pprof.
func startServers(bin, dir string, n, profPort int) (*servers, error) {
	if n < 1 {
		return nil, fmt.Errorf("-cluster %d: at least one server", n)
	}
	ports, cports := make([]int, n), make([]int, n)
	for i := range n {
		var err error
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
		if cports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	s := &servers{}
	var urls, routes []string
	for i := range n {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
		routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://127.0.0.1:%d", cports[i])))
	}
	s.url = strings.Join(urls, ",")
	for i := range n {
		conf := fmt.Sprintf("server_name: bench-%d\nlisten: \"127.0.0.1:%d\"\njetstream { store_dir: %q }\n%s\n",
			i+1, ports[i], filepath.Join(dir, fmt.Sprintf("js-%d", i+1)), subjects.EnricherServerMapping())
		if n > 1 {
			conf += fmt.Sprintf("cluster { name: bench, listen: \"127.0.0.1:%d\", routes: [%s] }\n", cports[i], strings.Join(routes, ", "))
		}
		if i == 0 && profPort != 0 {
			conf += fmt.Sprintf("prof_port: %d\n", profPort)
		}
		path := filepath.Join(dir, fmt.Sprintf("nats-%d.conf", i+1))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "-c", path)
		if err := cmd.Start(); err != nil {
			s.stop()
			return nil, fmt.Errorf("start %s: %w (build it: go build -o bin/nats-server github.com/nats-io/nats-server/v2)", bin, err)
		}
		s.procs = append(s.procs, cmd)
	}
	return s, nil
}

func (s *servers) stop() {
	for _, p := range s.procs {
		p.Process.Kill()
		p.Wait()
	}
}

// cpu is the CPU time the servers used so far, together.
func (s *servers) cpu() time.Duration {
	var d time.Duration
	for _, p := range s.procs {
		d += cpuOf(p.Process.Pid)
	}
	return d
}

// rss is the servers' resident memory, together.
func (s *servers) rss() int64 {
	var n int64
	for _, p := range s.procs {
		n += rssOf(p.Process.Pid)
	}
	return n
}

func (s *servers) describe() string {
	if len(s.procs) == 1 {
		return fmt.Sprintf("nats-server pid %d", s.procs[0].Process.Pid)
	}
	return fmt.Sprintf("%d nats-servers in a cluster, R%d (CPU and memory are their sum)", len(s.procs), len(s.procs))
}

// provision provisions the assets once JetStream answers (a cluster first
// elects its meta leader).
func provision(ctx context.Context, js jetstream.JetStream, o subjects.Options) error {
	deadline := time.Now().Add(time.Minute)
	for {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := subjects.Provision(pctx, js, o)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond) // the cluster is electing its leaders
	}
}

// warmCache loads the hot users (those the generator picks 90% of lessons
// from) and their subscriptions into the Enricher's cache, partition by
// partition, and returns how many records it asked for.
func warmCache(ctx context.Context, st *enricher.Store, o options) int {
	hot := max(1, int(float64(o.users)*o.hotShare))
	users := make([][]string, subjects.EnricherPartitions)
	subs := make([][]enricher.SubKey, subjects.EnricherPartitions)
	n := 0
	flush := func(p int) {
		st.Warm(ctx, p, users[p], subs[p])
		users[p], subs[p] = users[p][:0], subs[p][:0]
	}
	for u := range hot {
		id := userID(u)
		p := subjects.EnricherPartitionOf(id)
		users[p] = append(users[p], id)
		for k := range o.subsPerUser {
			subs[p] = append(subs[p], enricher.SubKey{UserUUID: id, Language: langOf(u, k, o.subsPerUser)})
		}
		n += 1 + o.subsPerUser
		if len(users[p]) == 256 {
			flush(p)
		}
	}
	for p := range users {
		flush(p)
	}
	return n
}
