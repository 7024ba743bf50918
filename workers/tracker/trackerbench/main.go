// Command trackerbench is the Tracker's benchmark (`make bench-tracker`): an
// embedded NATS server, a local ClickHouse and the YouTube stand-in (with
// latency) in this process, the state of channels × videos tracked hourly
// seeded in KV, and ONE worker process (`jetfleet worker --roles
// tracker-ticks,tracker-videos`) started beside it, so its memory is its own.
// One hourly tick is fired; the figures are the time from the tick to each
// sample being stored (a job is acked only after its sample is in
// ClickHouse, so TRACK's acked count over time is the stored-samples curve),
// jobs/s and the worker's memory. It prints figures; it asserts nothing.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/benchenv"
	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
	"jetfleet/workers/tracker"
)

func main() {
	var o options
	flag.StringVar(&o.jetfleet, "jetfleet", "bin/jetfleet", "the jetfleet binary the worker runs from (go build -o bin/jetfleet ./cmd/jetfleet)")
	flag.IntVar(&o.channels, "channels", 10_000, "tracked channels")
	flag.IntVar(&o.videos, "videos", 90_000, "videos tracked hourly")
	flag.DurationVar(&o.latency, "latency", 100*time.Millisecond, "stand-in YouTube response latency")
	flag.IntVar(&o.concurrency, "concurrency", 512, "video jobs in flight in the worker (TRACKER_CONCURRENCY)")
	flag.IntVar(&o.rate, "rate", 4000, "requests/s the worker may make to YouTube (YOUTUBE_RATE)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "trackerbench:", err)
		os.Exit(1)
	}
}

type options struct {
	jetfleet          string
	channels, videos  int
	latency, timeout  time.Duration
	concurrency, rate int
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	env, err := benchenv.Start(ctx, "tracker-bench")
	if err != nil {
		return err
	}
	defer env.Close()
	js, ch := env.JS, env.CH

	fmt.Fprintf(stdout, "tracker bench: %d channels, %d videos tracked hourly, YouTube stand-in latency %v, 1 worker (concurrency %d, %d req/s)\n",
		o.channels, o.videos, o.latency, o.concurrency, o.rate)
	yt := youtubetest.New(youtubetest.Options{})
	srv := httptest.NewServer(yt.Handler())
	defer srv.Close()
	start := time.Now()
	if err := seedTrackerBench(ctx, js, yt, o.channels, o.videos); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded stand-in and KV in %v\n", time.Since(start).Round(time.Millisecond))
	yt.SetLatency(o.latency)

	// The worker: a separate process, so its memory is measured alone.
	cmd := exec.CommandContext(ctx, o.jetfleet, "worker", "--roles", "tracker-ticks,tracker-videos")
	cmd.Env = append(os.Environ(),
		"NATS_URL="+env.NATS.ClientURL(), "CLICKHOUSE_URL="+env.ClickHouse.DSN(), "YOUTUBE_URL="+srv.URL, "YOUTUBE_THUMB_URL="+srv.URL,
		"YOUTUBE_RATE="+strconv.Itoa(o.rate), "TRACKER_CONCURRENCY="+strconv.Itoa(o.concurrency),
		"SESSION_SECRET="+strings.Repeat("b", 32), "METRICS_ADDR=127.0.0.1:0", "LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker %s: %w (build it: go build -o bin/jetfleet ./cmd/jetfleet)", o.jetfleet, err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	// Ready when the worker's pull requests reach the tick consumer.
	tickCons, err := js.Consumer(ctx, subjects.SchedulesStream, subjects.TrackerTickConsumer)
	if err != nil {
		return err
	}
	for ready := time.Now().Add(30 * time.Second); ; {
		info, err := tickCons.Info(ctx)
		if err == nil && info.NumWaiting > 0 {
			break
		}
		if time.Now().After(ready) {
			return errors.New("worker did not start pulling within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rssBefore, _ := benchenv.ProcMemory(cmd.Process.Pid)

	stream, err := js.Stream(ctx, subjects.TrackerStream)
	if err != nil {
		return err
	}
	payload, _ := json.Marshal(subjects.Tick{Schedule: subjects.TrackerVideoHourlyTick})
	tick := time.Now()
	if _, err := js.Publish(ctx, subjects.ScheduleTick(subjects.TrackerVideoHourlyTick), payload); err != nil {
		return err
	}
	// stored[i] is when the i-th sample was stored, from the acked-count
	// curve sampled every 20 ms.
	total := o.videos
	stored := make([]time.Duration, 0, total)
	var enqueued time.Duration
	var peakRSS int64
	deadline := tick.Add(o.timeout)
	for len(stored) < total {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d samples stored after %v", len(stored), total, o.timeout)
		}
		time.Sleep(20 * time.Millisecond)
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		published := int(info.State.LastSeq)
		if enqueued == 0 && published >= total {
			enqueued = time.Since(tick)
		}
		acked := published - int(info.State.Msgs)
		at := time.Since(tick)
		for len(stored) < acked && len(stored) < total {
			stored = append(stored, at)
		}
		if _, hwm := benchenv.ProcMemory(cmd.Process.Pid); hwm > peakRSS {
			peakRSS = hwm
		}
	}
	last := stored[len(stored)-1]
	var rows uint64
	if err := ch.QueryRow(ctx, "SELECT count() FROM video_samples").Scan(&rows); err != nil {
		return err
	}
	dead := uint64(0)
	if d, err := js.Stream(ctx, subjects.DLQStream); err == nil {
		dead = d.CachedInfo().State.Msgs
	}
	pct := func(p float64) time.Duration { return stored[min(len(stored)-1, int(p*float64(len(stored))))] }
	fmt.Fprintf(stdout, "tick → all %d jobs enqueued: %v\n", total, enqueued.Round(time.Millisecond))
	fmt.Fprintf(stdout, "tick → sample stored: p50 %v  p99 %v  last %v  (target: last within 3m)\n",
		pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), last.Round(time.Millisecond))
	fmt.Fprintf(stdout, "throughput: %.0f jobs/s (%d YouTube requests/s)\n", float64(total)/last.Seconds(), int(2*float64(total)/last.Seconds()))
	fmt.Fprintf(stdout, "video_samples rows: %d   dead-lettered: %d\n", rows, dead)
	fmt.Fprintf(stdout, "worker memory: RSS %s idle before the tick, peak %s\n", benchenv.MiB(rssBefore), benchenv.MiB(peakRSS))
	return nil
}

// seedTrackerBench builds the world: channels with videos on the stand-in,
// and the tracker state that an earlier sample would have left (records
// with the current title and thumbnail hash, hourly windows), written with
// async publishes to the KV bucket's subjects.
func seedTrackerBench(ctx context.Context, js jetstream.JetStream, yt *youtubetest.Server, channels, videos int) error {
	now := time.Now().UTC()
	var futures []jetstream.PubAckFuture
	put := func(key string, v any, ttl time.Duration) error {
		b, _ := json.Marshal(v)
		var opts []jetstream.PublishOpt
		if ttl > 0 {
			opts = append(opts, jetstream.WithMsgTTL(ttl))
		}
		f, err := js.PublishAsync("$KV."+subjects.TrackerBucket+"."+key, b, opts...)
		if err != nil {
			return err
		}
		futures = append(futures, f)
		if len(futures) >= 2000 {
			return drain(ctx, &futures)
		}
		return nil
	}
	for c := range channels {
		cid := youtubetest.ChannelID(c)
		yt.AddChannel(cid, "", fmt.Sprintf("Channel %d", c))
		if err := put(subjects.TrackerChannelKey(cid), subjects.TrackerChannel{ID: cid, Title: fmt.Sprintf("Channel %d", c), Created: now}, 0); err != nil {
			return err
		}
	}
	for i := range videos {
		cid := youtubetest.ChannelID(i % channels)
		vid := youtubetest.VideoID(i)
		title := fmt.Sprintf("Video %d", i)
		yt.AddVideo(cid, vid, title, now.Add(-time.Duration(i%160)*time.Hour), int64(1000+i))
		yt.SetGrowth(vid, 0.5)
		small, err := yt.ThumbnailJPEG(vid, "default.jpg")
		if err != nil {
			return err
		}
		rec := subjects.TrackerVideo{ID: vid, ChannelID: cid, Title: title, ThumbHash: tracker.ThumbHash(small), FirstSeen: now}
		if err := put(subjects.TrackerVideoKey(vid), rec, 0); err != nil {
			return err
		}
		if err := put(subjects.TrackerChannelVideoKey(cid, vid), subjects.TrackerLink{Since: now}, 0); err != nil {
			return err
		}
		if err := put(subjects.TrackerHourlyKey(vid), subjects.TrackerWindow{Until: now.Add(subjects.TrackerHourlyWindow)}, subjects.TrackerHourlyWindow); err != nil {
			return err
		}
	}
	return drain(ctx, &futures)
}

func drain(ctx context.Context, futures *[]jetstream.PubAckFuture) error {
	for _, f := range *futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("seed %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	*futures = (*futures)[:0]
	return nil
}
