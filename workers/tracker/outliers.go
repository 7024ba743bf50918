package tracker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/analytics/bands"
	"jetfleet/internal/accounts"
	"jetfleet/internal/blob"
	"jetfleet/internal/sealed"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// OutliersDeps are what the tracker-outliers role needs.
type OutliersDeps struct {
	JS         jetstream.JetStream // enqueues the per-channel jobs on TRACK
	Blobs      blob.Store          // where the band snapshots are: none yet means a first run
	ClickHouse driver.Conn
	Store      *tracking.Store
	Users      *accounts.Store
	// Mail enqueues a mail on the MAIL work queue (mail.Enqueuer).
	Mail    func(context.Context, subjects.Mail) error
	BaseURL string // the site, for the links in the digest
	// Tokens seals the user id into the digest's unsubscribe link
	// (TOKEN_KEY, shared with the edge that opens it).
	Tokens *sealed.Box
	Log    *slog.Logger
}

// Outliers handles the weekly outlier tick (seed 000, "Outliers Detection"
// and "Sending the Email"): it reads the past week's samples in one pass
// and fans out one job per channel on TRACK (OutlierChannels updates the
// channel's band snapshot and writes its outliers), waits until they are
// done, stores the week's title/thumbnail change outliers, then sends each
// user one mail with all the outliers among the channels and videos they
// track.
type Outliers struct{ d OutliersDeps }

// NewOutliers returns the tick handler.
func NewOutliers(d OutliersDeps) *Outliers { return &Outliers{d: d} }

// DigestWeek is the week a tick at t reports on: the last full week before
// t (the tick fires on Monday morning).
func DigestWeek(t time.Time) time.Time {
	return analytics.WeekStart(t).AddDate(0, 0, -7)
}

// DigestMailID is the mail id (and Nats-Msg-Id) of uid's digest of week.
func DigestMailID(uid string, week time.Time) string {
	return "tracker-digest:" + uid + ":" + week.Format("20060102")
}

// Handle runs one tick. Everything it does can be done again: the snapshot
// is keyed by week, and a user whose digest is marked sent is skipped (the
// mail's id also dedupes a resend within the MAIL window, covering a crash
// between enqueue and mark).
func (o *Outliers) Handle(ctx context.Context, msg jetstream.Msg) error {
	md, err := msg.Metadata()
	if err != nil {
		return consume.Permanent(fmt.Errorf("tick without metadata: %w", err))
	}
	if name := subjects.ScheduleName(msg.Subject()); name != subjects.TrackerOutliersWeeklyTick {
		return consume.Permanentf("tick on %s: not the outlier schedule", msg.Subject())
	}
	week := DigestWeek(md.Timestamp)
	start := time.Now()
	progress := func() { _ = msg.InProgress() }
	channels, err := FanOutOutliers(ctx, o.d.JS, o.d.ClickHouse, o.d.Blobs, week, progress)
	if err != nil {
		return err
	}
	if err := OutlierJobsDone(ctx, o.d.JS, progress); err != nil {
		return err
	}
	if err := analytics.ChangeOutliers(ctx, o.d.ClickHouse, week); err != nil {
		return err
	}
	analysed := time.Now()
	all, err := analytics.WeekOutliers(ctx, o.d.ClickHouse, week)
	if err != nil {
		return err
	}
	sent, err := o.digests(ctx, msg, week, all)
	// The two phases are timed apart: the analysis grows with samples, the
	// digest with users (make bench-outliers reads these).
	o.d.Log.Info("outlier week done", "week", week.Format(time.DateOnly), "channels", channels, "outliers", len(all), "digests", sent,
		"analysis", analysed.Sub(start).Round(time.Millisecond), "digest", time.Since(analysed).Round(time.Millisecond),
		"took", time.Since(start).Round(time.Millisecond))
	return err
}

// channelBudget is how many samples an outlier job carries in full; a
// channel past it (hundreds of uploads a week) sends only the first and
// last sample of its videos beyond the newest bands.Videos·2 of the week,
// which cannot rank among its newest bands.Videos anyway, and stays far
// below the server's message size.
const channelBudget = 20_000

// FanOutOutliers reads the week's samples in one pass, a channel at a
// time, and enqueues one job per channel (ids from channel and week: a
// tick handled twice enqueues nothing twice), calling progress now and
// then. It returns the channels enqueued.
func FanOutOutliers(ctx context.Context, js jetstream.JetStream, ch driver.Conn, blobs blob.Store, week time.Time, progress func()) (int, error) {
	var (
		futures []jetstream.PubAckFuture
		n       int
	)
	err := weekJobs(ctx, ch, blobs, week, func(job subjects.TrackerChannelWeek) error {
		b, err := json.Marshal(job)
		if err != nil {
			return err
		}
		f, err := js.PublishAsync(subjects.TrackerOutlierJob(job.Channel), b, jetstream.WithMsgID(subjects.TrackerOutlierJobID(job.Channel, week)))
		if err != nil {
			return fmt.Errorf("enqueue outlier job of %s: %w", job.Channel, err)
		}
		futures = append(futures, f)
		n++
		if len(futures) >= 1000 {
			progress()
			return awaitAcks(ctx, &futures)
		}
		return nil
	})
	if err == nil {
		err = awaitAcks(ctx, &futures)
	}
	return n, err
}

// OutliersOfWeek stores week's band snapshots, bands and outliers in this
// process: the jobs FanOutOutliers would enqueue, each run by the
// tracker-outlier-channels handler in turn, then the change outliers, as
// the weekly tick does. The demo plants its first week with it, so a band
// and an outlier show from the first minute. Like the tick, it can run
// again for a week.
func OutliersOfWeek(ctx context.Context, ch driver.Conn, blobs blob.Store, week time.Time, log *slog.Logger) error {
	h, err := NewOutlierChannels(ch, blobs, log)
	if err != nil {
		return err
	}
	err = consume.WithLoop(ctx, h.Run, func(ctx context.Context) error {
		return weekJobs(ctx, ch, blobs, week, func(job subjects.TrackerChannelWeek) error { return h.channelWeek(ctx, job) })
	})
	if err != nil {
		return err
	}
	return analytics.ChangeOutliers(ctx, ch, week)
}

// weekJobs reads the week's samples in one pass, a channel at a time, and
// calls fn with each channel's outlier job (trimmed to channelBudget).
func weekJobs(ctx context.Context, ch driver.Conn, blobs blob.Store, week time.Time, fn func(subjects.TrackerChannelWeek) error) error {
	var job subjects.TrackerChannelWeek
	// The first run reads the history with the week, in the same pass,
	// rather than one history query per channel.
	snaps, err := blobs.List(ctx, subjects.TrackerBandKey(""))
	if err != nil {
		return fmt.Errorf("band snapshots: %w", err)
	}
	full := len(snaps) == 0
	flush := func() error {
		if job.Channel == "" {
			return nil
		}
		trimJob(&job)
		return fn(job)
	}
	err = analytics.WeekSamples(ctx, ch, week, full, func(v analytics.WeekCurve) error {
		if v.Channel != job.Channel {
			if err := flush(); err != nil {
				return err
			}
			job = subjects.TrackerChannelWeek{Channel: v.Channel, Week: week, Full: full}
		}
		job.Videos = append(job.Videos, subjects.TrackerWeekCurve{ID: v.Video, First: v.First, At: v.At, Views: v.Views})
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// trimJob keeps a job under channelBudget samples: videos ranked by their
// first sample, newest first; past the newest bands.Videos·2 (which the
// band cannot reach), a video keeps its latest sample (enough to judge it).
func trimJob(job *subjects.TrackerChannelWeek) {
	total := 0
	for _, v := range job.Videos {
		total += len(v.At)
	}
	if total <= channelBudget {
		return
	}
	slices.SortFunc(job.Videos, func(a, b subjects.TrackerWeekCurve) int { return cmp.Compare(b.First, a.First) })
	for i := 2 * bands.Videos; i < len(job.Videos); i++ {
		v := &job.Videos[i]
		last := 0
		for j := range v.At {
			if v.At[j] > v.At[last] {
				last = j
			}
		}
		v.At, v.Views = []int64{v.At[last]}, []uint64{v.Views[last]}
	}
}

// awaitAcks waits for the stream to acknowledge every publish in futures.
func awaitAcks(ctx context.Context, futures *[]jetstream.PubAckFuture) error {
	for _, f := range *futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("enqueue %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	*futures = (*futures)[:0]
	return nil
}

// OutlierJobsDone waits until the per-channel jobs are all done (acked or
// dead-lettered), calling progress every 30 s meanwhile (keeping the tick
// ours).
func OutlierJobsDone(ctx context.Context, js jetstream.JetStream, progress func()) error {
	cons, err := js.Consumer(ctx, subjects.TrackerStream, subjects.TrackerOutlierChannelConsumer)
	if err != nil {
		return fmt.Errorf("outlier jobs: %w", err)
	}
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	lastProgress := time.Now()
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("outlier jobs: %w", err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return nil
		}
		if time.Since(lastProgress) > 30*time.Second {
			progress()
			lastProgress = time.Now()
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (o *Outliers) digests(ctx context.Context, msg jetstream.Msg, week time.Time, all []analytics.Outlier) (sent int, err error) {
	if len(all) == 0 {
		return 0, nil
	}
	uids, err := o.d.Store.Users(ctx)
	if err != nil {
		return 0, fmt.Errorf("digest recipients: %w", err)
	}
	for i, uid := range uids {
		// Many users take a while: keep the tick ours.
		if i%500 == 499 {
			_ = msg.InProgress()
		}
		ok, err := o.digest(ctx, uid, week, all)
		if err != nil {
			return sent, err
		}
		if ok {
			sent++
		}
	}
	return sent, nil
}

// digest sends uid's mail for week unless they turned it off, have nothing
// to read in it, or already got it.
func (o *Outliers) digest(ctx context.Context, uid string, week time.Time, all []analytics.Outlier) (bool, error) {
	key := week.Format("20060102")
	if off, err := o.d.Store.DigestOff(ctx, uid); err != nil || off {
		return false, err
	}
	if done, err := o.d.Store.DigestSent(ctx, uid, key); err != nil || done {
		return false, err
	}
	chans, vids, err := o.d.Store.TrackedIDs(ctx, uid)
	if err != nil {
		return false, err
	}
	mine := analytics.PickOutliers(all, chans, vids)
	if len(mine) == 0 {
		return false, nil
	}
	user, err := o.d.Users.User(ctx, uid)
	if errors.Is(err, accounts.ErrNotFound) {
		return false, nil // the account is gone; its mappings go with GDPR's deletion
	}
	if err != nil {
		return false, fmt.Errorf("digest for %s: %w", uid, err)
	}
	items := o.digestItems(ctx, mine)
	token := tracking.UnsubscribeToken(o.d.Tokens, uid)
	links := digestLinks{
		Outliers:    o.d.BaseURL + "/tracker/outliers",
		Settings:    o.d.BaseURL + "/tracker/digest",
		Unsubscribe: o.d.BaseURL + "/tracker/unsubscribe/" + token,
	}
	html, err := digestHTML(week, items, links)
	if err != nil {
		return false, consume.Permanent(err)
	}
	m := subjects.Mail{
		ID:      DigestMailID(uid, week),
		To:      user.Email,
		Subject: "Your outliers for the week of " + week.Format("2 January 2006"),
		Text:    digestText(week, items, links),
		HTML:    html,
		// Mail programs' unsubscribe button POSTs here (RFC 8058).
		Unsubscribe: o.d.BaseURL + "/api/tracker/unsubscribe/" + token,
	}
	if err := o.d.Mail(ctx, m); err != nil {
		return false, err
	}
	return true, o.d.Store.MarkDigestSent(ctx, uid, key)
}

// digestItem is one outlier as the digest shows it.
type digestItem struct {
	Title, Describe, URL, Thumb string
}

// digestLinks are the digest's links beside its items.
type digestLinks struct {
	Outliers, Settings, Unsubscribe string
}

// digestItems gives each outlier its video's title and links: its curve
// on the site, its thumbnail at YouTube.
func (o *Outliers) digestItems(ctx context.Context, mine []analytics.Outlier) []digestItem {
	var out []digestItem
	for _, x := range mine {
		title := x.VideoID
		if v, err := o.d.Store.Video(ctx, x.VideoID); err == nil && v.Title != "" {
			title = v.Title
		}
		out = append(out, digestItem{Title: title, Describe: x.Describe(), URL: o.d.BaseURL + "/tracker/videos/" + x.VideoID,
			Thumb: "https://i.ytimg.com/vi/" + x.VideoID + "/mqdefault.jpg"})
	}
	return out
}

// digestText is the mail's plain-text body: one paragraph per outlier,
// each with the figures that made it one and a link to its curve, then the
// unsubscribe link.
func digestText(week time.Time, items []digestItem, l digestLinks) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Outliers among the channels and videos you track, week of %s:\n\n", week.Format("2 January 2006"))
	for _, x := range items {
		fmt.Fprintf(&b, "- %s\n  %s\n  %s\n\n", x.Title, x.Describe, x.URL)
	}
	fmt.Fprintf(&b, "All of this week's outliers: %s\n", l.Outliers)
	fmt.Fprintf(&b, "Mail settings: %s\n", l.Settings)
	fmt.Fprintf(&b, "Unsubscribe from this weekly mail: %s\n", l.Unsubscribe)
	return b.String()
}

var digestPage = template.Must(template.New("digest").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Your outliers</title></head>
<body style="font-family:sans-serif;max-width:40rem;margin:0 auto;padding:1rem;color:#1d2430">
<h1 style="font-size:1.3rem">Outliers, week of {{.Week}}</h1>
<p>Among the channels and videos you track:</p>
{{range .Items}}<table role="presentation" style="margin:0 0 1rem"><tr>
<td style="vertical-align:top;padding-right:.75rem"><a href="{{.URL}}"><img src="{{.Thumb}}" alt="" width="160" height="90"></a></td>
<td style="vertical-align:top"><a href="{{.URL}}"><strong>{{.Title}}</strong></a><br>{{.Describe}}</td>
</tr></table>
{{end}}<p><a href="{{.Links.Outliers}}">All of this week's outliers</a></p>
<p style="color:#5b6470;font-size:.9rem">You get this mail every Monday when something stood out. <a href="{{.Links.Unsubscribe}}">Unsubscribe</a> · <a href="{{.Links.Settings}}">mail settings</a></p>
</body></html>`))

// digestHTML is the mail's HTML body: the same items with thumbnails.
func digestHTML(week time.Time, items []digestItem, l digestLinks) (string, error) {
	var b strings.Builder
	err := digestPage.Execute(&b, map[string]any{"Week": week.Format("2 January 2006"), "Items": items, "Links": l})
	if err != nil {
		return "", fmt.Errorf("digest html: %w", err)
	}
	return b.String(), nil
}
