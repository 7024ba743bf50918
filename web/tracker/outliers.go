package tracker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"jetfleet/analytics"
	"jetfleet/subjects"
	webchart "jetfleet/web/chart"
)

// The outlier pages (seed 000, "Outliers Detection"): this week's outliers
// among what the user tracks, the digest preference, and the band and badges
// the channel and video pages show. All read the latest weekly snapshot,
// the one the outliers-weekly tick stored on Monday for the week before.

// snapshotWeek is the week of the latest snapshot at now.
func snapshotWeek(now time.Time) time.Time {
	return analytics.WeekStart(now).AddDate(0, 0, -7)
}

// weekBand is a channel's band in the latest snapshot; none when there is
// none (no snapshot yet, or the query failed: the page still shows the rest).
func (h *Handler) weekBand(ctx context.Context, channelID string) []analytics.BandPoint {
	if channelID == "" {
		return nil
	}
	band, err := analytics.ChannelBand(ctx, h.d.ClickHouse, channelID, snapshotWeek(time.Now()))
	if err != nil {
		h.d.Log.Warn("channel band", "channel", channelID, "err", err)
		return nil
	}
	return band
}

// weekOutliers are the latest snapshot's outliers of the given channels and
// videos; none when the query fails (logged).
func (h *Handler) weekOutliers(ctx context.Context, channels, videos map[string]bool) []analytics.Outlier {
	all, err := analytics.WeekOutliers(ctx, h.d.ClickHouse, snapshotWeek(time.Now()))
	if err != nil {
		h.d.Log.Warn("week outliers", "err", err)
		return nil
	}
	return analytics.PickOutliers(all, channels, videos)
}

type outlierRow struct {
	analytics.Outlier
	Title string
}

type outliersData struct {
	Week     string
	Rows     []outlierRow
	DigestOn bool
	Demo     bool   // offer "send the digest now"
	Notice   string // the answer to it
}

func (h *Handler) outliers(w http.ResponseWriter, r *http.Request, uid string) {
	ctx := r.Context()
	week := snapshotWeek(time.Now())
	chans, vids, err := h.d.Store.TrackedIDs(ctx, uid)
	if err != nil {
		h.pages.Fail(w, r, "tracked ids", err)
		return
	}
	all, err := analytics.WeekOutliers(ctx, h.d.ClickHouse, week)
	if err != nil {
		h.pages.Fail(w, r, "week outliers", err)
		return
	}
	off, err := h.d.Store.DigestOff(ctx, uid)
	if err != nil {
		h.pages.Fail(w, r, "digest preference", err)
		return
	}
	data := outliersData{Week: week.Format("2 January 2006"), DigestOn: !off, Demo: h.d.Demo, Notice: notice(r)}
	for _, o := range analytics.PickOutliers(all, chans, vids) {
		row := outlierRow{Outlier: o, Title: o.VideoID}
		if v, err := h.d.Store.Video(ctx, o.VideoID); err == nil && v.Title != "" {
			row.Title = v.Title
		}
		data.Rows = append(data.Rows, row)
	}
	h.pages.Render(w, r, http.StatusOK, "Outliers", outliersPage(data))
}

func (h *Handler) digest(w http.ResponseWriter, r *http.Request, uid string) {
	off, err := h.d.Store.DigestOff(r.Context(), uid)
	if err != nil {
		h.pages.Fail(w, r, "digest preference", err)
		return
	}
	h.pages.Render(w, r, http.StatusOK, "Weekly digest", digestPage(!off, r.URL.Query().Get("ok") == "saved"))
}

func (h *Handler) setDigest(w http.ResponseWriter, r *http.Request, uid string) {
	var on bool
	switch r.PostFormValue("digest") {
	case "on":
		on = true
	case "off":
	default:
		http.Error(w, "Say whether you want the weekly digest: digest must be on or off.", http.StatusBadRequest)
		return
	}
	if err := h.d.Store.SetDigest(r.Context(), uid, on); err != nil {
		h.pages.Fail(w, r, "set digest", err)
		return
	}
	http.Redirect(w, r, "/tracker/digest?ok=saved", http.StatusSeeOther)
}

// bandShapes draws band points with x at(b) and y(v): the polygon from the
// upper edge forward and the lower edge back, and the median line.
func bandShapes(band []analytics.BandPoint, at func(analytics.BandPoint) float64, y func(float64) float64) (polygon, median string) {
	var upper, lower, mid []string
	for i, b := range band {
		upper = append(upper, fmt.Sprintf("%.1f,%.1f", at(b), y(b.P75)))
		mid = append(mid, fmt.Sprintf("%.1f,%.1f", at(b), y(b.P50)))
		l := band[len(band)-1-i]
		lower = append(lower, fmt.Sprintf("%.1f,%.1f", at(l), y(l.P25)))
	}
	return strings.Join(append(upper, lower...), " "), strings.Join(mid, " ")
}

// layoutBand lays out a channel's band on its own: age on x, views on y
// from 0, a dot per age with its figures.
func layoutBand(band []analytics.BandPoint) chart {
	c := chart{Frame: viewsFrame()}
	if len(band) == 0 {
		c.Empty = true
		return c
	}
	maxAge := max(band[len(band)-1].AgeHours, 1)
	hi := 10.0
	for _, b := range band {
		hi = max(hi, b.P75)
	}
	x := func(b analytics.BandPoint) float64 { return c.X(float64(b.AgeHours) / float64(maxAge)) }
	y := func(v float64) float64 { return c.Y(v / hi) }
	c.Band, c.Median = bandShapes(band, x, y)
	c.Line = c.Median
	for _, b := range band {
		c.Dots = append(c.Dots, webchart.Dot{X: fmt.Sprintf("%.1f", x(b)), Y: fmt.Sprintf("%.1f", y(b.P50)),
			Label: fmt.Sprintf("age %s: median %s views, typical %s–%s (%d videos)", age(b.AgeHours),
				groupDigits(int64(b.P50)), groupDigits(int64(b.P25)), groupDigits(int64(b.P75)), b.Videos)})
	}
	c.YMin, c.YMax = "0", groupDigits(int64(hi))
	c.XStart, c.XEnd = "age 0", "age "+age(maxAge)
	return c
}

// age writes hours as the band counts them: hours in the first week, days
// after.
func age(hours uint32) string {
	if hours < 7*24 {
		return fmt.Sprintf("%d h", hours)
	}
	return fmt.Sprintf("%d days", hours/24)
}

func outlierBadge(o analytics.Outlier) string {
	if o.Kind == analytics.OutlierChannel {
		return fmt.Sprintf("outlier %.1f×", o.Score)
	}
	return fmt.Sprintf("%s lift %.1f×", strings.ReplaceAll(o.Kind, "+", " and "), o.Score)
}

// digestNow fires the weekly outlier tick at once (`jetfleet dev --demo`
// only), as `nats req sched.fire.outliers-weekly` would: the
// tracker-outliers role stores last week's snapshot and mails the digests,
// each still at most once per user and week.
func (h *Handler) digestNow(w http.ResponseWriter, r *http.Request, uid string) {
	payload, _ := json.Marshal(subjects.Tick{Schedule: subjects.TrackerOutliersWeeklyTick})
	if _, err := h.d.JS.Publish(r.Context(), subjects.ScheduleTick(subjects.TrackerOutliersWeeklyTick), payload); err != nil {
		h.pages.Fail(w, r, "send digest now", err)
		return
	}
	http.Redirect(w, r, "/tracker/outliers?ok="+noticeDigestSent, http.StatusSeeOther)
}
