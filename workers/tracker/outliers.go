package tracker

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/accounts"
	"jetfleet/internal/sealed"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// OutliersDeps are what the tracker-outliers role needs.
type OutliersDeps struct {
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
// and "Sending the Email"): it stores the past week's snapshot in
// ClickHouse, then sends each user one mail with all the outliers among the
// channels and videos they track.
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
	if err := analytics.SnapshotOutliers(ctx, o.d.ClickHouse, week); err != nil {
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
	o.d.Log.Info("outlier week done", "week", week.Format(time.DateOnly), "outliers", len(all), "digests", sent,
		"analysis", analysed.Sub(start).Round(time.Millisecond), "digest", time.Since(analysed).Round(time.Millisecond),
		"took", time.Since(start).Round(time.Millisecond))
	return err
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
