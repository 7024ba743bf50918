// Command counterbench is the Counter API's benchmark (`make bench-counter`):
// an embedded NATS server, a local ClickHouse, the edge and one counter
// worker in this process, loaded over loopback HTTP. It prints figures; it
// asserts nothing.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics/counterdb"
	"jetfleet/internal/apikeys"
	"jetfleet/internal/benchenv"
	"jetfleet/subjects"
	"jetfleet/web"
	"jetfleet/workers/counter"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "ingest time per popularity distribution")
	clients := flag.Int("clients", 8, "concurrent HTTP clients")
	batch := flag.Int("batch", 1000, "events per request")
	videos := flag.Int("videos", 100_000, "distinct videos")
	reads := flag.Int("reads", 500, "reads per measured read kind")
	ceilingMsgs := flag.Int("ceiling-msgs", 200_000, "messages for the raw async-publish ceiling")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *duration, *clients, *batch, *videos, *reads, *ceilingMsgs, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "counterbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, duration time.Duration, clients, batch, videos, reads, ceilingMsgs int, stdout io.Writer) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env, err := benchenv.Start(ctx, "counter-bench", jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return err
	}
	defer env.Close()
	nc, js, ch := env.NC, env.JS, env.CH
	fmt.Fprintf(stdout, "counter bench: %d clients × %d events/request, %d videos, %v per distribution, GOMAXPROCS=%d\n",
		clients, batch, videos, duration, runtime.GOMAXPROCS(0))

	// 1. The ceiling: raw async publishes of one-row batches.
	ceiling, err := rawPublishRate(ctx, js, ceilingMsgs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "raw JetStream async publish (ceiling): %.0f msg/s (%d messages of one row, R1 file storage)\n", ceiling, ceilingMsgs)

	// 2. The fleet: a worker and the edge.
	wnc, err := nats.Connect(env.NATS.ClientURL())
	if err != nil {
		return err
	}
	defer wnc.Close()
	wjs, _ := jetstream.New(wnc)
	worker := counter.New(wjs, ch, counter.Config{}, log)
	wctx, stopWorker := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { defer close(wdone); worker.Run(wctx) }()
	defer func() { stopWorker(); <-wdone }()

	edge, err := web.New(ctx, web.Config{SessionSecret: bytes.Repeat([]byte("b"), 32)},
		web.Deps{NATS: nc, JS: js, ClickHouse: ch, Gatherer: prometheus.NewRegistry(), Log: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: edge}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	keys, err := apikeys.OpenCounter(ctx, js)
	if err != nil {
		return err
	}
	key, _, err := keys.Issue(ctx, apikeys.NewKey{Tenant: "bench", Name: "bench", RateLimit: 1e9, ReadLimit: 1e9})
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients + 4}}
	b := &bench{hc: hc, base: base, key: key}

	// Let the worker absorb the ceiling messages first.
	waitFor(ctx, func() bool { return worker.Stats.Events.Load() >= uint64(ceilingMsgs) }, time.Minute)

	for _, dist := range []string{"uniform", "zipf"} {
		bodies := makeBodies(dist, videos, batch, 32)
		before := worker.Stats.Events.Load()
		r := b.ingest(ctx, bodies, clients, batch, duration)
		start := time.Now()
		waitFor(ctx, func() bool { return worker.Stats.Events.Load() >= before+uint64(r.accepted)+uint64(r.probes) }, 2*time.Minute)
		drain := time.Since(start)
		counted := worker.Stats.Events.Load() - before
		fmt.Fprintf(stdout, "\n%s popularity:\n", dist)
		fmt.Fprintf(stdout, "  accepted            %.0f events/s (%d events in %v, %d requests, %d failed)\n",
			float64(r.accepted)/r.elapsed.Seconds(), r.accepted, r.elapsed.Round(time.Millisecond), r.requests, r.failed)
		fmt.Fprintf(stdout, "  counted             %.0f events/s (all %d counted %v after the ingest ended)\n",
			float64(counted)/(r.elapsed+drain).Seconds(), counted, drain.Round(time.Millisecond))
		fmt.Fprintf(stdout, "  202 latency         p50 %v  p99 %v  (request of %d events, includes the JetStream publish ack)\n",
			pct(r.latencies, 50), pct(r.latencies, 99), batch)
		fmt.Fprintf(stdout, "  freshness           p50 %v  p99 %v  (%d probes: 202 → visible in a read)\n",
			pct(r.freshness, 50), pct(r.freshness, 99), len(r.freshness))
		fmt.Fprintf(stdout, "  worker              %d flushes, %d rollup rows (%.1f events per row after collapse)\n",
			worker.Stats.Flushes.Load(), worker.Stats.Rows.Load(), float64(worker.Stats.Events.Load())/float64(max(worker.Stats.Rows.Load(), 1)))
	}

	// 3. Reads over one year: a hot video with a row every minute, a cold one
	// with a row a day.
	if err := seedYear(ctx, ch); err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, v := range []string{"year-hot", "year-cold"} {
		lat, err := b.reads(ctx, v, now.Add(-365*24*time.Hour), now, reads)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nread 1-year COUNT of %s: p50 %v  p99 %v  (%d reads over HTTP, the same range: the edge's read cache answers while no flush is reported)\n", v, pct(lat, 50), pct(lat, 99), len(lat))
		var uncached []time.Duration
		for i := range reads {
			// A range a minute longer each time: never in the cache.
			t0 := time.Now()
			if _, err := b.get(ctx, v, now.Add(-365*24*time.Hour-time.Duration(i+1)*time.Minute), now); err != nil {
				return err
			}
			uncached = append(uncached, time.Since(t0))
		}
		fmt.Fprintf(stdout, "  distinct ranges (no cache hit):  p50 %v  p99 %v\n", pct(uncached, 50), pct(uncached, 99))
		var direct []time.Duration
		for range reads {
			t0 := time.Now()
			if _, _, err := counterdb.Stats(ctx, ch, counterdb.Query{Tenant: "bench", VideoID: v, Type: subjects.CounterView, Start: now.Add(-365 * 24 * time.Hour), End: now}); err != nil {
				return err
			}
			direct = append(direct, time.Since(t0))
		}
		fmt.Fprintf(stdout, "  of which the ClickHouse query: p50 %v  p99 %v\n", pct(direct, 50), pct(direct, 99))
	}
	return nil
}

type bench struct {
	hc        *http.Client
	base, key string
}

type ingestResult struct {
	accepted, requests, failed, probes int
	elapsed                            time.Duration
	latencies, freshness               []time.Duration
}

func (b *bench) post(ctx context.Context, path string, body []byte) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.base+path, bytes.NewReader(body))
	req.Header.Set("X-API-Key", b.key)
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (b *bench) ingest(ctx context.Context, bodies [][]byte, clients, batch int, d time.Duration) ingestResult {
	var res ingestResult
	var mu sync.Mutex
	var accepted, requests, failed atomic.Int64
	ictx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lats []time.Duration
			for i := c; ictx.Err() == nil; i++ {
				t0 := time.Now()
				status, err := b.post(ictx, "/api/counter/v1/batch", bodies[i%len(bodies)])
				if ictx.Err() != nil {
					break
				}
				requests.Add(1)
				if err != nil || status != http.StatusAccepted {
					failed.Add(1)
					continue
				}
				lats = append(lats, time.Since(t0))
				accepted.Add(int64(batch))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lats...)
			mu.Unlock()
		}()
	}
	// Freshness probes, five a second: a single event on a fresh video, then
	// poll its count until it shows.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ictx.Done():
		case <-tick.C:
			wg.Add(1)
			go func() {
				defer wg.Done()
				video := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), n)
				body, _ := json.Marshal(map[string]any{"video_id": video})
				if status, err := b.post(ictx, "/api/counter/v1/events", body); err != nil || status != http.StatusAccepted {
					return
				}
				t0 := time.Now()
				mu.Lock()
				res.probes++
				mu.Unlock()
				for ctx.Err() == nil && time.Since(t0) < 30*time.Second {
					if v, err := b.count(ctx, video); err == nil && v == 1 {
						mu.Lock()
						res.freshness = append(res.freshness, time.Since(t0))
						mu.Unlock()
						return
					}
					time.Sleep(20 * time.Millisecond) // the probe's polling interval
				}
			}()
			continue
		}
		break
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.accepted, res.requests, res.failed = int(accepted.Load()), int(requests.Load()), int(failed.Load())
	return res
}

// get reads the stats of video over [start, end).
func (b *bench) get(ctx context.Context, video string, start, end time.Time) (float64, error) {
	return b.read(ctx, "stats", video, start, end)
}

// count reads the views of video around now (a probe's single event).
func (b *bench) count(ctx context.Context, video string) (float64, error) {
	now := time.Now()
	return b.read(ctx, "views", video, now.Add(-time.Hour), now.Add(time.Hour))
}

func (b *bench) read(ctx context.Context, kind, video string, start, end time.Time) (float64, error) {
	url := fmt.Sprintf("%s/api/counter/v1/videos/%s/%s?start=%d&end=%d", b.base, video, kind, start.Unix(), end.Unix())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("X-API-Key", b.key)
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Value float64 `json:"value"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("read %s of %s: %d", kind, video, resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.Value, err
}

func (b *bench) reads(ctx context.Context, video string, start, end time.Time, n int) ([]time.Duration, error) {
	for range 20 { // warm up
		if _, err := b.get(ctx, video, start, end); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := b.get(ctx, video, start, end); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// makeBodies pre-renders n batch bodies so the load generator spends little
// CPU of the shared machine on JSON.
func makeBodies(dist string, videos, batch, n int) [][]byte {
	rng := rand.New(rand.NewPCG(7, 11))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(3, 5)), 1.1, 1, uint64(videos-1))
	types := []string{"VIEW", "VIEW", "VIEW", "VIEW", "LIKE", "SHARE"}
	out := make([][]byte, n)
	for i := range out {
		events := make([]map[string]any, batch)
		for j := range events {
			v := rng.IntN(videos)
			if dist == "zipf" {
				v = int(zipf.Uint64())
			}
			events[j] = map[string]any{"video_id": fmt.Sprintf("video-%d", v), "type": types[rng.IntN(len(types))], "value": rng.IntN(300)}
		}
		out[i], _ = json.Marshal(map[string]any{"events": events})
	}
	return out
}

func rawPublishRate(ctx context.Context, js jetstream.JetStream, n int) (float64, error) {
	payloads := make([][]byte, subjects.CounterPartitions)
	for i := range payloads {
		// a video id that hashes to partition i
		for v := 0; ; v++ {
			id := fmt.Sprintf("ceiling-%d", v)
			if subjects.CounterPartition(id) == i {
				payloads[i], _ = json.Marshal(subjects.CounterBatch{Rows: []subjects.CounterRow{{Tenant: "ceiling", VideoID: id, Type: subjects.CounterView, Minute: time.Now().Unix() / 60 * 60, Count: 1, Sum: 1}}})
				break
			}
		}
	}
	start := time.Now()
	for i := range n {
		p := i % subjects.CounterPartitions
		// A generous stall wait: on a busy shared machine the server may fall
		// behind for a moment; the ceiling waits instead of failing.
		if _, err := js.PublishAsync(subjects.CounterSubject(p), payloads[p], jetstream.WithStallWait(10*time.Second)); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// seedYear writes a year of minute rollups for the benchmark tenant: a row
// every minute for year-hot, one a day for year-cold.
func seedYear(ctx context.Context, ch driver.Conn) error {
	now := time.Now().UTC().Truncate(time.Minute)
	var rows []counterdb.Row
	for m := now.Add(-365 * 24 * time.Hour); m.Before(now); m = m.Add(time.Minute) {
		rows = append(rows, counterdb.Row{Tenant: "bench", VideoID: "year-hot", Type: subjects.CounterView, Minute: m, Events: 10, Total: 10})
		if m.Hour() == 12 && m.Minute() == 0 {
			rows = append(rows, counterdb.Row{Tenant: "bench", VideoID: "year-cold", Type: subjects.CounterView, Minute: m, Events: 1, Total: 1})
		}
		if len(rows) >= 200_000 {
			if err := counterdb.Flush(ctx, ch, "", rows, nil); err != nil {
				return err
			}
			rows = rows[:0]
		}
	}
	return counterdb.Flush(ctx, ch, "", rows, nil)
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return s[i].Round(10 * time.Microsecond)
}

func waitFor(ctx context.Context, cond func() bool, d time.Duration) {
	deadline := time.Now().Add(d)
	for !cond() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
}
