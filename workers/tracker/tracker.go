// Package tracker holds the Tracker's worker roles (seed 000, "Scheduling
// and Batching" and "Tracking"):
//
//   - Ticks turns a schedule tick into one TRACK job per live tracking
//     record (channels, hourly videos, daily videos), each with the message
//     id kind:id:slot so a tick handled twice enqueues nothing twice;
//   - HiRes turns the 2-minute tick into one job per video a premium user
//     chose high-resolution sampling for (its first 24 hours);
//   - Channels reads a channel's RSS feed and starts tracking new uploads;
//   - Videos scrapes a video's watch page, hashes its smallest thumbnail,
//     stores thumbnails and title/thumbnail changes, and writes the sample;
//   - Outliers turns the weekly tick into last week's outlier snapshot
//     (computed in ClickHouse) and one digest mail per user.
//
// Each is a consume.Handler; the shared runtime runs them with bounded
// concurrency, so waiting on YouTube overlaps.
package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/tracking"
	"jetfleet/internal/youtube"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Slots say how a tick's time becomes the slot its jobs stand for: the
// tick time truncated to the slot size. Production ticks fire once per slot;
// `jetfleet dev --demo` fires them faster with smaller slots.
type Slots struct {
	Channel, Hourly, Daily time.Duration // defaults 1h, 1h, 24h
	HiRes                  time.Duration // default subjects.TrackerHiResEvery (2m)
}

func (s *Slots) defaults() {
	if s.Channel <= 0 {
		s.Channel = time.Hour
	}
	if s.Hourly <= 0 {
		s.Hourly = time.Hour
	}
	if s.Daily <= 0 {
		s.Daily = 24 * time.Hour
	}
	if s.HiRes <= 0 {
		s.HiRes = subjects.TrackerHiResEvery
	}
}

// jobTimeout bounds one channel or video job, under the TRACK consumers'
// ack wait.
const jobTimeout = 90 * time.Second

// Ticks handles schedule ticks.
type Ticks struct {
	js     jetstream.JetStream
	store  *tracking.Store
	slots  Slots
	window int
	log    *slog.Logger
}

// NewTicks returns the tick handler. window bounds the job publishes
// awaiting their ack (default 2048, under the client's async limit).
func NewTicks(js jetstream.JetStream, store *tracking.Store, slots Slots, window int, log *slog.Logger) *Ticks {
	slots.defaults()
	if window <= 0 {
		window = 2048
	}
	return &Ticks{js: js, store: store, slots: slots, window: window, log: log}
}

// Handle enqueues the jobs of one tick.
func (t *Ticks) Handle(ctx context.Context, msg jetstream.Msg) error {
	md, err := msg.Metadata()
	if err != nil {
		return consume.Permanent(fmt.Errorf("tick without metadata: %w", err))
	}
	name := subjects.ScheduleName(msg.Subject())
	var (
		ids  []string
		kind string
		slot time.Time
	)
	switch name {
	case subjects.TrackerChannelTick:
		kind, slot = subjects.TrackerKindChannel, md.Timestamp.Truncate(t.slots.Channel)
		ids, err = t.store.LiveChannels(ctx)
	case subjects.TrackerVideoHourlyTick:
		kind, slot = subjects.TrackerKindHourly, md.Timestamp.Truncate(t.slots.Hourly)
		ids, err = t.store.LiveHourly(ctx)
	case subjects.TrackerVideoDailyTick:
		kind, slot = subjects.TrackerKindDaily, md.Timestamp.Truncate(t.slots.Daily)
		ids, err = t.dailyOnly(ctx)
	default:
		return consume.Permanentf("tick on %s: not a tracker schedule", msg.Subject())
	}
	if err != nil {
		return fmt.Errorf("list %s records: %w", kind, err)
	}
	// Ticks come hourly in production but every few seconds in `jetfleet dev
	// --demo`: the tick itself is DEBUG, its one-line summary INFO.
	t.log.Debug("tick", "schedule", name, "slot", slot.UTC(), "delivery", md.NumDelivered)
	start := time.Now()
	if err := t.enqueue(ctx, msg, kind, ids, slot.UTC()); err != nil {
		return err
	}
	t.log.Info("tick enqueued", "schedule", name, "jobs", len(ids), "slot", slot.UTC(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// dailyOnly lists the videos in their daily window but past their hourly
// one: a video still sampled hourly gains nothing from a daily sample.
func (t *Ticks) dailyOnly(ctx context.Context) ([]string, error) {
	daily, err := t.store.LiveDaily(ctx)
	if err != nil {
		return nil, err
	}
	hourly, err := t.store.LiveHourly(ctx)
	if err != nil {
		return nil, err
	}
	skip := make(map[string]bool, len(hourly))
	for _, id := range hourly {
		skip[id] = true
	}
	out := daily[:0]
	for _, id := range daily {
		if !skip[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// enqueue publishes one job per id asynchronously with a bounded window and
// waits for every ack. A failure returns an error and the tick is
// redelivered: the jobs already stored are dropped as duplicates.
func (t *Ticks) enqueue(ctx context.Context, tick jetstream.Msg, kind string, ids []string, slot time.Time) error {
	pending := make(chan jetstream.PubAckFuture, t.window)
	errc := make(chan error, 1)
	go func() {
		var first error
		for f := range pending {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				if first == nil {
					first = fmt.Errorf("enqueue %s: %w", f.Msg().Subject, err)
				}
			case <-ctx.Done():
				if first == nil {
					first = ctx.Err()
				}
			}
		}
		errc <- first
	}()
	lastProgress := time.Now()
	var err error
	for _, id := range ids {
		subject := subjects.TrackerVideoJob(id)
		if kind == subjects.TrackerKindChannel {
			subject = subjects.TrackerChannelJob(id)
		}
		data, _ := json.Marshal(subjects.TrackerJob{Kind: kind, ID: id, Slot: slot})
		m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, subjects.TrackerJobID(kind, id, slot))
		var f jetstream.PubAckFuture
		if f, err = t.js.PublishMsgAsync(m); err != nil {
			err = fmt.Errorf("enqueue %s: %w", subject, err)
			break
		}
		pending <- f
		if time.Since(lastProgress) > 10*time.Second {
			// A very large tick outlives the ack wait otherwise.
			_ = tick.InProgress()
			lastProgress = time.Now()
		}
	}
	close(pending)
	return errors.Join(err, <-errc)
}

// Channels handles channel jobs.
type Channels struct {
	store    *tracking.Store
	yt       *youtube.Client
	now      func() time.Time
	log      *slog.Logger
	refusals *refusals
}

// NewChannels returns the channel job handler. now is the clock (default
// time.Now).
func NewChannels(store *tracking.Store, yt *youtube.Client, now func() time.Time, log *slog.Logger) *Channels {
	if now == nil {
		now = time.Now
	}
	return &Channels{store: store, yt: yt, now: now, log: log, refusals: newRefusals(store, log)}
}

// decodeJob reads a job; one that cannot be read is dead-lettered.
func decodeJob(msg jetstream.Msg) (subjects.TrackerJob, error) {
	var job subjects.TrackerJob
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		return job, consume.Permanentf("job on %s: not JSON: %v", msg.Subject(), err)
	}
	if job.ID == "" || job.ID != subjects.LastToken(msg.Subject()) || job.Slot.IsZero() {
		return job, consume.Permanentf("job on %s: id %q and slot %v do not match the subject", msg.Subject(), job.ID, job.Slot)
	}
	return job, nil
}

// classify marks what retrying cannot fix as permanent: a video YouTube
// does not know, a page the scraper cannot read. A refusal of us, an open
// circuit or an outage stays transient: the runtime retries with backoff.
func classify(err error) error {
	if errors.Is(err, youtube.ErrNotFound) || errors.Is(err, youtube.ErrUnparseable) || errors.Is(err, youtube.ErrNotYouTube) {
		return consume.Permanent(err)
	}
	return err
}

// refusals records that YouTube refuses us (for the pages) and logs it, at
// most once per refusalEvery however many jobs it refuses.
type refusals struct {
	store *tracking.Store
	log   *slog.Logger

	mu   sync.Mutex
	last time.Time
}

const refusalEvery = 30 * time.Second

func newRefusals(store *tracking.Store, log *slog.Logger) *refusals {
	return &refusals{store: store, log: log}
}

// note records err if it is a refusal.
func (r *refusals) note(ctx context.Context, err error) {
	var refusal *youtube.RefusalError
	if !errors.As(err, &refusal) {
		return
	}
	r.mu.Lock()
	due := time.Since(r.last) >= refusalEvery
	if due {
		r.last = time.Now()
	}
	r.mu.Unlock()
	if !due {
		return
	}
	r.log.Warn("YouTube is refusing us; jobs are retried with backoff", "kind", refusal.Kind, "reason", refusal.Reason)
	if err := r.store.NoteRefusal(ctx, string(refusal.Kind), refusal.Reason); err != nil {
		r.log.Warn("record YouTube refusal", "err", err)
	}
}

// Handle checks one channel's feed for new uploads.
func (c *Channels) Handle(ctx context.Context, msg jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, jobTimeout)
	defer cancel()
	job, err := decodeJob(msg)
	if err != nil {
		return err
	}
	ch, err := c.store.Channel(ctx, job.ID)
	if errors.Is(err, tracking.ErrNotFound) {
		c.log.Debug("channel no longer tracked; job skipped", "channel", job.ID)
		return nil
	}
	if err != nil {
		return err
	}
	feed, err := c.yt.Feed(ctx, job.ID)
	if err != nil {
		return c.feedFailed(ctx, job.ID, err)
	}
	// The feed is newest first; everything before the latest known video
	// is new. Unknown (first check, or the latest video was removed): every
	// entry, which SeeVideo takes idempotently.
	var fresh []youtube.FeedEntry
	for _, e := range feed.Entries {
		if e.VideoID == ch.LatestVideoID {
			break
		}
		fresh = append(fresh, e)
	}
	for i := len(fresh) - 1; i >= 0; i-- {
		e := fresh[i]
		created, err := c.store.SeeVideo(ctx, subjects.TrackerVideo{ID: e.VideoID, ChannelID: job.ID, Title: e.Title, PublishedAt: e.Published}, e.Published)
		if err != nil {
			return fmt.Errorf("channel %s: %w", job.ID, err)
		}
		if created {
			c.log.Debug("new upload tracked", "channel", job.ID, "video", e.VideoID, "published", e.Published)
		}
	}
	now := c.now().UTC()
	return c.store.UpdateChannel(ctx, job.ID, func(r *subjects.TrackerChannel) {
		if len(feed.Entries) > 0 {
			r.LatestVideoID = feed.Entries[0].VideoID
		}
		if r.Title == "" {
			r.Title = feed.Title
		}
		r.Checked = now
		r.Failed, r.Failure = time.Time{}, ""
	})
}

// feedFailed handles a feed that did not answer. The channel was validated
// when it was first tracked, and YouTube's feeds answer 404 or 500 for live
// channels during outages: every failure is transient (retried with
// backoff), and the record says when the check failed while Checked keeps
// the last good one.
func (c *Channels) feedFailed(ctx context.Context, id string, err error) error {
	if errors.Is(err, youtube.ErrNotYouTube) {
		return consume.Permanent(err)
	}
	c.refusals.note(ctx, err)
	now := c.now().UTC()
	if uerr := c.store.UpdateChannel(ctx, id, func(r *subjects.TrackerChannel) {
		r.Failed, r.Failure = now, failure(err)
	}); uerr != nil && !errors.Is(uerr, tracking.ErrNotFound) {
		c.log.Warn("record failed check", "channel", id, "err", uerr)
	}
	return err
}

// failure says in a few words why YouTube gave us nothing, for the pages.
func failure(err error) string {
	var refusal *youtube.RefusalError
	switch {
	case errors.As(err, &refusal):
		return "YouTube refused us (" + string(refusal.Kind) + ")"
	case errors.Is(err, youtube.ErrUnavailable):
		return "YouTube failing repeatedly; waiting before asking again"
	case errors.Is(err, youtube.ErrNotFound):
		return "YouTube's feed answered 404"
	case errors.Is(err, youtube.ErrUnparseable):
		return "YouTube's feed could not be read"
	}
	return "YouTube did not answer"
}
