package analytics

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Outlier rules (seed 000, "Outliers Detection"), the figures users compare
// with YouTube Studio's "typical performance" band and vidIQ/1of10 scores.
const (
	// BandVideos is how many of a channel's most recent videos make its
	// expected band (the seed: "at least the last 10-20").
	BandVideos = 20
	// BandMinVideos is how many videos a band needs at an age before a
	// video is judged against it: a median of two is no expectation.
	BandMinVideos = 5
	// ChannelOutlierScore is the views ÷ channel median at the same age from
	// which a video is a channel outlier (1of10's "2x"), provided it is also
	// above the band's upper edge.
	ChannelOutlierScore = 2.0
	// ChangeOutlierLift is how many times its views per hour before a
	// title/thumbnail change a video must gain per hour after it.
	ChangeOutlierLift = 1.5
	// changeWindow is how far before and after a change the rates are read.
	changeWindow = 24 * time.Hour
)

// Outlier kinds besides the change kinds ("thumbnail", "title",
// "thumbnail+title").
const OutlierChannel = "channel"

// Outlier is one row of the weekly snapshot (table outliers).
type Outlier struct {
	Week      time.Time
	ChannelID string
	VideoID   string
	Kind      string  // OutlierChannel or the change kinds
	Score     float64 // views ÷ median, or rate after ÷ rate before
	Views     uint64
	Expected  float64 // channel median at the video's age, or views/hour before the change
	Low, High float64 // the band's edges (channel outliers)
	At        time.Time
}

// BandPoint is a channel's expected views at one age.
type BandPoint struct {
	AgeHours      uint32
	Videos        uint32
	P25, P50, P75 float64
}

// WeekStart is the start of t's week, Monday 00:00 UTC: the key of a
// weekly snapshot.
func WeekStart(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	back := (int(d.Weekday()) + 6) % 7 // days since Monday
	return d.AddDate(0, 0, -back)
}

// ageHours buckets the age of sampled_at since first: whole hours in the
// first week (hourly samples), whole days after (daily samples), so videos
// sampled at different minutes meet at the same age.
func ageHours(col string) string {
	return `toUInt32(if(toUInt32(` + col + `) - toUInt32(first) < 604800,
	intDiv(toUInt32(` + col + `) - toUInt32(first), 3600),
	intDiv(toUInt32(` + col + `) - toUInt32(first), 86400) * 24))`
}

// firstSamples is each video's first sample before ?end: its age origin.
const firstSamples = `SELECT video_id, any(channel_id) AS channel_id, min(sampled_at) AS first
	FROM video_samples WHERE sampled_at < toDateTime(?) GROUP BY video_id`

// insertBands writes the band of every channel with a sample in the week:
// quantiles over the views its BandVideos newest videos had at each age
// (quantiles samples only past 8,192 values, so these are exact,
// interpolated between neighbours). The videos' first samples are read in
// full every week rather than patched: at 1.7M samples the whole snapshot
// takes about a second. Arguments: week start, week end (×2), week start, week end, BandVideos.
var insertBands = `
INSERT INTO channel_bands (channel_id, week, age_hours, videos, p25, p50, p75)
SELECT channel_id, toDateTime(?) AS week, age_hours, videos, q[1], q[2], q[3]
FROM (
	SELECT channel_id, age_hours, toUInt32(count()) AS videos, quantiles(0.25, 0.5, 0.75)(views) AS q
	FROM (
		SELECT video_id, any(channel_id) AS channel_id, ` + ageHours("sampled_at") + ` AS age_hours, max(views) AS views
		FROM (SELECT video_id, sampled_at, views FROM video_samples FINAL WHERE sampled_at < toDateTime(?))
		ANY INNER JOIN (
			SELECT video_id, channel_id, first FROM (` + firstSamples + `)
			WHERE channel_id IN (SELECT channel_id FROM video_samples WHERE sampled_at >= toDateTime(?) AND sampled_at < toDateTime(?))
			ORDER BY channel_id, first DESC
			LIMIT ? BY channel_id
		) USING video_id
		GROUP BY video_id, age_hours
	)
	GROUP BY channel_id, age_hours
)`

// insertChannelOutliers writes the videos sampled in the week whose latest
// views that week stand far above their channel's band at the same age.
// Arguments: week start, week start, week end, week end, week start,
// BandMinVideos, ChannelOutlierScore.
var insertChannelOutliers = `
INSERT INTO outliers (week, channel_id, video_id, kind, score, views, expected, low, high, at)
SELECT toDateTime(?) AS week, channel_id, video_id, '` + OutlierChannel + `', views / p50, views, p50, p25, p75, at
FROM (
	SELECT video_id, channel_id, views, at, ` + ageHours("at") + ` AS age_hours
	FROM (
		SELECT video_id, max(sampled_at) AS at, argMax(views, sampled_at) AS views
		FROM video_samples FINAL
		WHERE sampled_at >= toDateTime(?) AND sampled_at < toDateTime(?)
		GROUP BY video_id
	) ANY INNER JOIN (` + firstSamples + `) USING video_id
) ANY INNER JOIN (
	SELECT channel_id, age_hours, videos, p25, p50, p75 FROM channel_bands FINAL WHERE week = toDateTime(?)
) USING channel_id, age_hours
WHERE videos >= ? AND p50 > 0 AND views >= ? * p50 AND views > p75`

// insertChangeOutliers writes the videos with exactly one title/thumbnail
// change in the week (the seed: several changes in a week say nothing about
// any one of them) whose views per hour in the day after the change are
// ChangeOutlierLift times those of the day before. Arguments: week start,
// week start, week end, window seconds (×12), ChangeOutlierLift.
var insertChangeOutliers = `
INSERT INTO outliers (week, channel_id, video_id, kind, score, views, expected, low, high, at)
SELECT toDateTime(?) AS week, channel_id, video_id, kind,
	((vd - vc) / (td - tc)) / ((vb - va) / (tb - ta)) AS score, toUInt64(vd), (vb - va) / (tb - ta) * 3600, 0, 0, c
FROM (
	SELECT video_id, any(channel_id) AS channel_id, c, kind,
		toInt64(minIf(toUInt32(sampled_at), sampled_at >= c - ? AND sampled_at < c)) AS ta,
		toInt64(argMinIf(views, sampled_at, sampled_at >= c - ? AND sampled_at < c)) AS va,
		toInt64(maxIf(toUInt32(sampled_at), sampled_at >= c - ? AND sampled_at < c)) AS tb,
		toInt64(argMaxIf(views, sampled_at, sampled_at >= c - ? AND sampled_at < c)) AS vb,
		toInt64(minIf(toUInt32(sampled_at), sampled_at >= c AND sampled_at <= c + ?)) AS tc,
		toInt64(argMinIf(views, sampled_at, sampled_at >= c AND sampled_at <= c + ?)) AS vc,
		toInt64(maxIf(toUInt32(sampled_at), sampled_at >= c AND sampled_at <= c + ?)) AS td,
		toInt64(argMaxIf(views, sampled_at, sampled_at >= c AND sampled_at <= c + ?)) AS vd
	FROM video_samples FINAL
	ANY INNER JOIN (
		SELECT video_id, any(changed_at) AS c, arrayStringConcat(arraySort(groupUniqArray(kind)), '+') AS kind
		FROM video_changes FINAL
		WHERE changed_at >= toDateTime(?) AND changed_at < toDateTime(?)
		GROUP BY video_id
		HAVING uniqExact(changed_at) = 1
	) USING video_id
	WHERE sampled_at >= c - ? AND sampled_at <= c + ?
	GROUP BY video_id, c, kind
)
WHERE tb > ta AND td > tc AND vb > va AND (vd - vc) / (td - tc) >= ? * (vb - va) / (tb - ta)`

// ChangeOutliers stores the week's thumbnail and title change outliers
// (the tracker's weekly job; channel outliers come from its per-channel
// jobs). week is a WeekStart; rows are keyed by it, so it can run again.
func ChangeOutliers(ctx context.Context, conn driver.Conn, week time.Time) error {
	start := WeekStart(week)
	s, e := start.Unix(), start.AddDate(0, 0, 7).Unix()
	w := int64(changeWindow / time.Second)
	if err := conn.Exec(ctx, insertChangeOutliers, s, w, w, w, w, w, w, w, w, s, e, w, w, ChangeOutlierLift); err != nil {
		return fmt.Errorf("outliers %s: change outliers: %w", start.Format(time.DateOnly), err)
	}
	return nil
}

// WeekCurve is one video's samples: At in Unix seconds, Views alike
// indexed, in no particular order; First is its first sample (Unix
// seconds) within the 67 days before the week's end.
type WeekCurve struct {
	Channel, Video string
	At             []int64
	Views          []uint64
	First          int64
}

// HistoryDays is how far back WeekSamples looks for a video's first
// sample, and reads with full history: a video is sampled up to 60 days,
// and the week is 7.
const HistoryDays = 67

// WeekSamples reads the samples of the week starting at week in one pass,
// calling fn once per video with a sample in it, a channel's videos one
// after another, each with its first sample. full also reads the videos'
// samples before the week (the first run, when no band snapshot exists
// yet). Rows a replay duplicated come twice (no FINAL): the band keeps the
// highest views at an age, so a duplicate changes nothing.
func WeekSamples(ctx context.Context, conn driver.Conn, week time.Time, full bool, fn func(WeekCurve) error) error {
	start := WeekStart(week)
	end := start.AddDate(0, 0, 7)
	history := end.AddDate(0, 0, -HistoryDays)
	from := start
	if full {
		from = history
	}
	rows, err := conn.Query(ctx, `
		SELECT channel_id, video_id, groupArray(toInt64(toUInt32(sampled_at))), groupArray(views), any(first)
		FROM video_samples
		ANY INNER JOIN (
			SELECT video_id, toInt64(toUInt32(min(sampled_at))) AS first
			FROM video_samples
			WHERE sampled_at >= toDateTime(?) AND sampled_at < toDateTime(?)
			GROUP BY video_id
			HAVING max(sampled_at) >= toDateTime(?)
		) USING video_id
		WHERE sampled_at >= toDateTime(?) AND sampled_at < toDateTime(?)
		GROUP BY channel_id, video_id
		ORDER BY channel_id, video_id`, history.Unix(), end.Unix(), start.Unix(), from.Unix(), end.Unix())
	if err != nil {
		return fmt.Errorf("samples of week %s: %w", start.Format(time.DateOnly), err)
	}
	defer rows.Close()
	for rows.Next() {
		var v WeekCurve
		if err := rows.Scan(&v.Channel, &v.Video, &v.At, &v.Views, &v.First); err != nil {
			return fmt.Errorf("samples of week %s: scan: %w", start.Format(time.DateOnly), err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SamplesBefore returns the samples of the given videos before t, by
// video: the history of videos a band snapshot has not seen yet (through
// the table's primary key, so a few granules per video).
func SamplesBefore(ctx context.Context, conn driver.Conn, videos []string, t time.Time) (map[string]WeekCurve, error) {
	out := map[string]WeekCurve{}
	if len(videos) == 0 {
		return out, nil
	}
	// A tuple, not an array: IN over a literal set uses the primary key.
	ids := make([]any, len(videos))
	for i, v := range videos {
		ids[i] = v
	}
	rows, err := conn.Query(ctx, `
		SELECT video_id, groupArray(toInt64(toUInt32(sampled_at))), groupArray(views)
		FROM video_samples
		WHERE video_id IN (?) AND sampled_at < toDateTime(?)
		GROUP BY video_id`, clickhouse.GroupSet{Value: ids}, t.Unix())
	if err != nil {
		return nil, fmt.Errorf("history of %d videos: %w", len(videos), err)
	}
	defer rows.Close()
	for rows.Next() {
		var v WeekCurve
		if err := rows.Scan(&v.Video, &v.At, &v.Views); err != nil {
			return nil, fmt.Errorf("history of %d videos: scan: %w", len(videos), err)
		}
		out[v.Video] = v
	}
	return out, rows.Err()
}

// SnapshotOutliers computes and stores the week's snapshot in SQL from the
// full history: every active channel's band, then its channel outliers and
// the change outliers. The demo plants its week with it at start-up; the
// tracker's weekly job instead updates per-channel band snapshots
// (analytics/bands, workers/tracker FanOutOutliers) with the week alone. week
// is a WeekStart. Every row is keyed by the week, so running it again
// (a re-fired tick, a retry after a failure half way) rewrites the same rows.
func SnapshotOutliers(ctx context.Context, conn driver.Conn, week time.Time) error {
	start := WeekStart(week)
	end := start.AddDate(0, 0, 7)
	s, e := start.Unix(), end.Unix()
	if err := conn.Exec(ctx, insertBands, s, e, e, s, e, BandVideos); err != nil {
		return fmt.Errorf("outliers %s: channel bands: %w", start.Format(time.DateOnly), err)
	}
	if err := conn.Exec(ctx, insertChannelOutliers, s, s, e, e, s, BandMinVideos, ChannelOutlierScore); err != nil {
		return fmt.Errorf("outliers %s: channel outliers: %w", start.Format(time.DateOnly), err)
	}
	w := int64(changeWindow / time.Second)
	if err := conn.Exec(ctx, insertChangeOutliers, s, w, w, w, w, w, w, w, w, s, e, w, w, ChangeOutlierLift); err != nil {
		return fmt.Errorf("outliers %s: change outliers: %w", start.Format(time.DateOnly), err)
	}
	return nil
}

// WeekOutliers returns all of the week's outliers, highest score first.
// A week has few: the digest and the pages hold them in memory and pick each
// user's (the seed's "outliers in global variables", minus the globals).
func WeekOutliers(ctx context.Context, conn driver.Conn, week time.Time) ([]Outlier, error) {
	start := WeekStart(week)
	rows, err := conn.Query(ctx, `
		SELECT week, channel_id, video_id, kind, score, views, expected, low, high, at
		FROM outliers FINAL
		WHERE week = toDateTime(?)
		ORDER BY score DESC, video_id, kind`, start.Unix())
	if err != nil {
		return nil, fmt.Errorf("outliers of week %s: %w", start.Format(time.DateOnly), err)
	}
	defer rows.Close()
	var out []Outlier
	for rows.Next() {
		var o Outlier
		if err := rows.Scan(&o.Week, &o.ChannelID, &o.VideoID, &o.Kind, &o.Score, &o.Views, &o.Expected, &o.Low, &o.High, &o.At); err != nil {
			return nil, fmt.Errorf("outliers of week %s: scan: %w", start.Format(time.DateOnly), err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// ChannelBand returns a channel's band from the week's snapshot, youngest
// age first.
func ChannelBand(ctx context.Context, conn driver.Conn, channelID string, week time.Time) ([]BandPoint, error) {
	start := WeekStart(week)
	rows, err := conn.Query(ctx, `
		SELECT age_hours, videos, p25, p50, p75
		FROM channel_bands FINAL
		WHERE channel_id = ? AND week = toDateTime(?)
		ORDER BY age_hours`, channelID, start.Unix())
	if err != nil {
		return nil, fmt.Errorf("band of %s: %w", channelID, err)
	}
	defer rows.Close()
	var out []BandPoint
	for rows.Next() {
		var b BandPoint
		if err := rows.Scan(&b.AgeHours, &b.Videos, &b.P25, &b.P50, &b.P75); err != nil {
			return nil, fmt.Errorf("band of %s: scan: %w", channelID, err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// PickOutliers returns the outliers of the given channels (any of their
// videos) and videos, in all's order.
func PickOutliers(all []Outlier, channels, videos map[string]bool) []Outlier {
	var out []Outlier
	for _, x := range all {
		if channels[x.ChannelID] || videos[x.VideoID] {
			out = append(out, x)
		}
	}
	return out
}

// Describe says in one line why o is an outlier, with the figures.
func (o Outlier) Describe() string {
	if o.Kind == OutlierChannel {
		return fmt.Sprintf("%.1f× the channel's median at this age: %s views where its videos typically have %s–%s",
			o.Score, groupThousands(float64(o.Views)), groupThousands(o.Low), groupThousands(o.High))
	}
	return fmt.Sprintf("%.1f× the views per hour after the %s change of %s (%s an hour before)",
		o.Score, strings.ReplaceAll(o.Kind, "+", " and "), o.At.UTC().Format("Mon 2 Jan 15:04 UTC"), groupThousands(o.Expected))
}

// groupThousands rounds v and writes it with thousands separators.
func groupThousands(v float64) string { return GroupDigits(int64(math.Round(v))) }

// GroupDigits writes n with thousands separators ("1,234,567"), as the
// digest mails and the Tracker's pages show counts.
func GroupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
