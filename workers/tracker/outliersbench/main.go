// Command outliersbench is the weekly outlier job's benchmark (`make
// bench-outliers`): an embedded NATS server and a local ClickHouse in this
// process, channels × videos of synthetic view curves in video_samples
// (hourly samples for a video's first 7 days, daily ones up to 60 days, a
// few planted outliers), users tracking some of the channels, then ONE
// worker's tracker-outliers and tracker-outlier-channels roles built as the
// worker builds them (tracker.Roles) on the outliers-weekly tick. Figures: the job's wall time (tick → acked),
// its analysis and digest phases, the rows ClickHouse read, and the ratio
// to baselines measured in the same run (the insert of the samples, a bare
// scan of them with and without FINAL). It prints figures; it asserts
// nothing.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/accounts"
	"jetfleet/internal/benchenv"
	"jetfleet/internal/blob"
	"jetfleet/internal/sealed"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/tracker"
)

func main() {
	var o options
	flag.IntVar(&o.channels, "channels", 10_000, "channels")
	flag.IntVar(&o.videos, "videos", 90_000, "videos, spread over the channels, published over the last 60 days")
	flag.IntVar(&o.users, "users", 1_000, "users, each tracking -per-user channels")
	flag.IntVar(&o.perUser, "per-user", 10, "channels each user tracks")
	flag.IntVar(&o.concurrency, "concurrency", 128, "channel jobs in flight in the worker (tracker.Config.OutlierConcurrency)")
	flag.BoolVar(&o.warm, "warm", true, "run the week before first, so the measured tick updates existing band snapshots (false: the measured tick is a first run)")
	flag.IntVar(&o.plantEvery, "plant-every", 500, "one video in this many is planted far above its channel's curve")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up on the weekly job after")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "outliersbench:", err)
		os.Exit(1)
	}
}

type options struct {
	channels, videos, users, perUser, plantEvery, concurrency int
	timeout                                                   time.Duration
	warm                                                      bool
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	if o.channels <= 0 || o.videos <= 0 || o.plantEvery <= 0 {
		return errors.New("-channels, -videos and -plant-every must be positive")
	}
	env, err := benchenv.Start(ctx, "outliers-bench")
	if err != nil {
		return err
	}
	defer env.Close()
	ch := env.CH
	fmt.Fprintf(stdout, "outliers bench: %d channels, %d videos (hourly 7 days, then daily to 60 days), %d users × %d channels, 1 worker\n",
		o.channels, o.videos, o.users, o.perUser)

	// The tick fires now; the job reports on the last full week.
	now := time.Now().UTC()
	week := tracker.DigestWeek(now)
	start := time.Now()
	rows, planted, err := seedSamples(ctx, ch, o, week.AddDate(0, 0, 7))
	if err != nil {
		return err
	}
	insert := time.Since(start)
	fmt.Fprintf(stdout, "baseline: inserted %d samples (%d planted outliers) in %v (%.0f rows/s)\n",
		rows, planted, insert.Round(time.Millisecond), float64(rows)/insert.Seconds())
	// Merge what the inserts left in parts, as a week of background merges
	// would have: FINAL on unmerged parts is not what production reads.
	start = time.Now()
	if err := ch.Exec(ctx, "OPTIMIZE TABLE video_samples FINAL"); err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	fmt.Fprintf(stdout, "merged video_samples in %v\n", time.Since(start).Round(time.Millisecond))

	scan, err := timed(ctx, ch, "SELECT count(), sum(views) FROM video_samples")
	if err != nil {
		return err
	}
	scanFinal, err := timed(ctx, ch, "SELECT count(), sum(views) FROM video_samples FINAL")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "baseline: bare scan of the samples %v, with FINAL %v\n", scan.Round(time.Millisecond), scanFinal.Round(time.Millisecond))

	start = time.Now()
	if err := seedUsers(ctx, env, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d users in KV in %v\n", o.users, time.Since(start).Round(time.Millisecond))

	// The role as `jetfleet worker --roles tracker-outliers` builds it.
	done := make(chan phases, 1)
	log := slog.New(&phaseLog{done: done, next: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})})
	box, err := sealed.New([]byte(strings.Repeat("k", 32)))
	if err != nil {
		return err
	}
	signer, err := blob.NewURLSigner([]byte(strings.Repeat("s", 32)))
	if err != nil {
		return err
	}
	blobs, err := blob.NewObjectStore(ctx, env.JS, subjects.BlobStore, signer, "http://localhost")
	if err != nil {
		return err
	}
	counted := &countingConn{Conn: ch}
	deps := consume.Deps{JS: env.JS, ClickHouse: counted, Blobs: blobs, Log: log, Tokens: box}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	roles := map[string]consume.Role{}
	for _, r := range tracker.Roles(tracker.Config{BaseURL: "https://jetfleet.example", OutlierConcurrency: o.concurrency}) {
		roles[r.Name] = r
	}
	h, err := roles["tracker-outliers"].Build(ctx, deps)
	if err != nil {
		return err
	}
	metrics := consume.NewMetrics(prometheus.NewRegistry())
	go consume.New(env.JS, roles["tracker-outliers"].Consumer, h, metrics, log).Run(rctx)
	go roles["tracker-outlier-channels"].Run(rctx, deps, metrics)

	// Last week's run, as the tick a week ago would have fanned it out:
	// with no band snapshot yet it reads the history (the first run), and
	// leaves the snapshots this week's tick updates with its week only.
	if o.warm {
		start := time.Now()
		n, err := tracker.FanOutOutliers(ctx, env.JS, counted, blobs, week.AddDate(0, 0, -7), func() {})
		if err != nil {
			return err
		}
		if err := tracker.OutlierJobsDone(ctx, env.JS, func() {}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "first run (the week before, no snapshot: history read in the same pass): %d channel jobs in %v, %d rows read\n",
			n, time.Since(start).Round(time.Millisecond), counted.rows.Swap(0))
	}

	payload, _ := json.Marshal(subjects.Tick{Schedule: subjects.TrackerOutliersWeeklyTick})
	tick := time.Now()
	if _, err := env.JS.Publish(ctx, subjects.ScheduleTick(subjects.TrackerOutliersWeeklyTick), payload); err != nil {
		return err
	}
	var p phases
	select {
	case p = <-done:
	case <-time.After(o.timeout):
		return fmt.Errorf("the weekly job did not finish within %v", o.timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	cons, err := env.JS.Consumer(ctx, subjects.SchedulesStream, subjects.TrackerOutliersConsumer)
	if err != nil {
		return err
	}
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Consumer >= 1 && info.NumAckPending == 0 {
			break
		}
		if time.Since(tick) > o.timeout {
			return fmt.Errorf("the tick was not acked within %v", o.timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wall := time.Since(tick)
	read := counted.rows.Load()
	var bands, found uint64
	if err := ch.QueryRow(ctx, "SELECT count() FROM channel_bands").Scan(&bands); err != nil {
		return err
	}
	if err := ch.QueryRow(ctx, "SELECT count() FROM outliers WHERE kind = ?", analytics.OutlierChannel).Scan(&found); err != nil {
		return err
	}
	// The band snapshots' sizes, as stored.
	snaps, err := blobs.List(ctx, "tracker/bands/")
	if err != nil {
		return err
	}
	var snapBytes, snapMax int64
	for _, x := range snaps {
		snapBytes += x.Size
		snapMax = max(snapMax, x.Size)
	}
	mails := uint64(0)
	if s, err := env.JS.Stream(ctx, subjects.MailStream); err == nil {
		mails = s.CachedInfo().State.Msgs
	}
	fmt.Fprintf(stdout, "weekly job, tick → acked: %v (target ≤ 10 min)   ratio to the FINAL scan: %.1f×, to the insert: %.2f×\n",
		wall.Round(time.Millisecond), wall.Seconds()/scanFinal.Seconds(), wall.Seconds()/insert.Seconds())
	fmt.Fprintf(stdout, "  analysis (one pass over the week's samples, %d channel jobs, change outliers): %v\n", p.channels, p.analysis.Round(time.Millisecond))
	fmt.Fprintf(stdout, "  digest (%d users, %d mails enqueued): %v\n", o.users, mails, p.digest.Round(time.Millisecond))
	fmt.Fprintf(stdout, "rows read by the job's queries (ClickHouse progress): %d (%.1f× the %d samples)\n",
		read, float64(read)/float64(rows), rows)
	if len(snaps) > 0 {
		fmt.Fprintf(stdout, "band snapshots in object storage: %d, %.0f B average, %d B largest (%d videos/channel; 20 videos × 60 days: see analytics/bands' size test)\n",
			len(snaps), float64(snapBytes)/float64(len(snaps)), snapMax, o.videos/o.channels)
	}
	fmt.Fprintf(stdout, "band rows: %d   channel outliers: %d (planted: %d)   outliers in the digest's read: %d\n", bands, found, planted, p.outliers)
	return nil
}

// seedSamples writes the synthetic curves up to end: each channel has a
// typical size, each video a size around it, views approach it as
// size·(1−e^(−age/2 days)) with 2% noise; a planted video gets 6× its size.
// Returns the rows written and the planted videos.
func seedSamples(ctx context.Context, ch driver.Conn, o options, end time.Time) (rows, planted int, err error) {
	rng := rand.New(rand.NewPCG(17, 17))
	scale := make([]float64, o.channels)
	for c := range scale {
		scale[c] = 2000 * math.Exp(1.2*rng.NormFloat64())
	}
	const insertSQL = "INSERT INTO video_samples (video_id, channel_id, sampled_at, views, likes, title, thumb_hash)"
	b, err := ch.PrepareBatch(ctx, insertSQL)
	if err != nil {
		return 0, 0, err
	}
	inBatch := 0
	add := func(vid, cid string, at time.Time, views float64) error {
		if err := b.Append(vid, cid, at, uint64(views), uint64(views/40), "t", "h"); err != nil {
			return err
		}
		rows++
		if inBatch++; inBatch < 500_000 {
			return nil
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert samples: %w", err)
		}
		inBatch = 0
		b, err = ch.PrepareBatch(ctx, insertSQL)
		return err
	}
	const tau = 48.0 // hours
	for i := range o.videos {
		c := i % o.channels
		cid, vid := fmt.Sprintf("UCbench%07d", c), fmt.Sprintf("vbench%07d", i)
		size := scale[c] * math.Exp(0.3*rng.NormFloat64())
		if i%o.plantEvery == o.plantEvery/2 {
			size *= 6
			planted++
		}
		// Published uniformly over the last 60 days, on a whole minute.
		published := end.Add(-time.Duration(1+rng.IntN(60*24*60-1)) * time.Minute)
		curve := func(at time.Time) float64 {
			h := at.Sub(published).Hours()
			return size * (1 - math.Exp(-h/tau)) * (1 + 0.02*rng.NormFloat64())
		}
		for h := range 7 * 24 {
			at := published.Add(time.Duration(h) * time.Hour)
			if !at.Before(end) {
				break
			}
			if err := add(vid, cid, at, max(0, curve(at))); err != nil {
				return rows, planted, err
			}
		}
		for d := 7; d < 60; d++ {
			at := published.AddDate(0, 0, d)
			if !at.Before(end) {
				break
			}
			if err := add(vid, cid, at, curve(at)); err != nil {
				return rows, planted, err
			}
		}
	}
	if err := b.Send(); err != nil {
		return rows, planted, fmt.Errorf("insert samples: %w", err)
	}
	return rows, planted, nil
}

// seedUsers creates the accounts and their tracked channels, each user
// o.perUser consecutive channels from a spread-out start.
func seedUsers(ctx context.Context, env *benchenv.Env, o options) error {
	users, err := accounts.Open(ctx, env.JS, accounts.Config{})
	if err != nil {
		return err
	}
	store, err := tracking.Open(ctx, env.JS, tracking.Options{})
	if err != nil {
		return err
	}
	for u := range o.users {
		acct, err := users.EnsureUser(ctx, fmt.Sprintf("bench%d@example.com", u))
		if err != nil {
			return err
		}
		for k := range o.perUser {
			c := (u*7919 + k) % o.channels
			cid := fmt.Sprintf("UCbench%07d", c)
			if err := store.TrackChannel(ctx, acct.ID, true, subjects.TrackerChannel{ID: cid, Title: cid}); err != nil {
				return err
			}
		}
	}
	return nil
}

// timed runs a query and returns how long reading its result took.
func timed(ctx context.Context, ch driver.Conn, q string) (time.Duration, error) {
	start := time.Now()
	var n uint64
	var sum uint64
	if err := ch.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	return time.Since(start), nil
}

// countingConn is the job's ClickHouse connection, adding up the rows
// its queries read from the server's progress packets (18.16 keeps no
// query log here, and its system.events has no rows-read counter).
type countingConn struct {
	driver.Conn
	rows atomic.Uint64
}

func (c *countingConn) count(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithProgress(func(p *clickhouse.Progress) { c.rows.Add(p.Rows) }))
}

func (c *countingConn) Exec(ctx context.Context, q string, args ...any) error {
	return c.Conn.Exec(c.count(ctx), q, args...)
}

func (c *countingConn) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	return c.Conn.Query(c.count(ctx), q, args...)
}

func (c *countingConn) QueryRow(ctx context.Context, q string, args ...any) driver.Row {
	return c.Conn.QueryRow(c.count(ctx), q, args...)
}

// phases are the weekly job's own timings, from its "outlier week done"
// log line.
type phases struct {
	analysis, digest   time.Duration
	outliers, channels int64
}

// phaseLog passes records on to next and sends the job's phases to done.
type phaseLog struct {
	done chan phases
	next slog.Handler
}

func (l *phaseLog) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= slog.LevelInfo
}

func (l *phaseLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "outlier week done" {
		var p phases
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "analysis":
				p.analysis = a.Value.Duration()
			case "digest":
				p.digest = a.Value.Duration()
			case "outliers":
				p.outliers = a.Value.Int64()
			case "channels":
				p.channels = a.Value.Int64()
			}
			return true
		})
		select {
		case l.done <- p:
		default:
		}
	}
	if l.next.Enabled(ctx, r.Level) {
		return l.next.Handle(ctx, r)
	}
	return nil
}

func (l *phaseLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &phaseLog{done: l.done, next: l.next.WithAttrs(as)}
}

func (l *phaseLog) WithGroup(name string) slog.Handler {
	return &phaseLog{done: l.done, next: l.next.WithGroup(name)}
}
