package subjects

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The Tracker's contract (seed 000).
//
// Tracking state lives in the TRACKER KV bucket, one record per channel and
// per video however many users track it, plus mappings both ways:
//
//	channel.<cid>                 TrackedChannel
//	channel.<cid>.user.<uid>      TrackLink (who tracks the channel)
//	channel.<cid>.video.<vid>     TrackLink (videos seen on the channel)
//	video.<vid>                   TrackedVideo
//	video.<vid>.user.<uid>        TrackLink (who tracks the video itself)
//	user.<uid>.channel.<cid>      TrackLink
//	user.<uid>.video.<vid>        TrackLink
//	user.<uid>.credit.<yyyymm>.<vid>  TrackLink (a free-plan credit spent)
//	user.<uid>.claims.channels        TrackClaims (channels the plan counts)
//	user.<uid>.claims.credits.<yyyymm> TrackClaims (videos that spent a credit)
//	user.<uid>.claims.hires           TrackClaims (videos sampled at high resolution, capped per user)
//	user.<uid>.digest.off         present when the user turned the weekly digest off
//	user.<uid>.digest.<yyyymmdd>  the week's digest was enqueued (per-key TTL, 5 weeks)
//	hires.<vid>.<uid>             TrackerHiRes, per-key TTL: uid (premium) has vid sampled every
//	                              TrackerHiResEvery until the end of its first 24 hours
//	hourly.<vid>                  TrackWindow, per-key TTL: sampled hourly until it expires (7 days)
//	daily.<vid>                   TrackWindow, per-key TTL: sampled daily until it expires (60 days)
//
// Schedule ticks (ChannelTick, VideoHourlyTick, VideoDailyTick) are consumed
// by TrackerTickConsumer (the high-resolution tick, TrackerVideoHiResTick, by
// TrackerHiResConsumer), which lists the live records and enqueues one
// TrackerJob per item on TRACK (TrackChannelJob / TrackVideoJob) with
// Nats-Msg-Id TrackJobID(kind, id, slot): a tick handled twice enqueues
// nothing twice within TrackDedupeWindow.
const (
	// TrackerBucket is the tracking state described above.
	TrackerBucket = "TRACKER"
	// TrackerStream is the work queue of tracking jobs.
	TrackerStream = "TRACK"
	// TrackerDedupeWindow is how long TRACK remembers a job id.
	TrackerDedupeWindow = 2 * time.Hour

	// TrackerTickConsumer consumes the tracker's schedule ticks on
	// SCHEDULES.
	TrackerTickConsumer = "tracker-ticks"
	// TrackerOutliersConsumer consumes the OutlierWeeklyTick: the week's
	// outlier snapshot, then one digest mail per user.
	TrackerOutliersConsumer = "tracker-outliers"
	// TrackerDigestTTL is how long a digest's sent mark is kept: longer
	// than any re-fire of its week's tick.
	TrackerDigestTTL = 35 * 24 * time.Hour
	// TrackerHiResConsumer consumes the TrackerVideoHiResTick: one job per
	// video in a premium user's high-resolution window. Its own consumer,
	// so a 2-minute tick never waits behind a large hourly one.
	TrackerHiResConsumer = "tracker-hires"
	// TrackerHiResEvery is the high-resolution sampling interval, and
	// TrackerHiResWindow how long after its publication a video may be
	// sampled that often.
	TrackerHiResEvery  = 2 * time.Minute
	TrackerHiResWindow = 24 * time.Hour
	// TrackerChannelConsumer runs channel jobs (RSS checks).
	TrackerChannelConsumer = "tracker-channels"
	// TrackerVideoConsumer runs video jobs (watch page, thumbnail, sample).
	TrackerVideoConsumer = "tracker-videos"

	// TrackerHourlyWindow and TrackDailyWindow are how long a video is
	// sampled hourly and daily after it is first seen.
	TrackerHourlyWindow = 7 * 24 * time.Hour
	TrackerDailyWindow  = 60 * 24 * time.Hour

	// TrackerOutlierChannelConsumer runs the weekly outlier job's
	// per-channel jobs (band snapshot update, channel outliers).
	TrackerOutlierChannelConsumer = "tracker-outlier-channels"

	trackChannelPrefix  = "track.channel."
	trackVideoPrefix    = "track.video."
	trackOutliersPrefix = "track.outliers."
)

// TrackerOutlierJob is the subject of channel id's part of the weekly
// outlier job.
func TrackerOutlierJob(id string) string { return trackOutliersPrefix + id }

// TrackerOutlierJobID is the Nats-Msg-Id of channel id's outlier job for
// the week starting at week: a tick handled twice enqueues it once.
func TrackerOutlierJobID(id string, week time.Time) string {
	return "outliers:" + id + ":" + strconv.FormatInt(week.Unix(), 10)
}

// TrackerBandKey is the object-store key of channel id's band snapshot
// (analytics/bands' encoding).
func TrackerBandKey(id string) string { return "tracker/bands/" + id }

// TrackerChannelWeek is the payload of an outlier job: a channel's samples
// in the week, per video (At in Unix seconds, Views alike indexed).
type TrackerChannelWeek struct {
	Channel string             `json:"channel"`
	Week    time.Time          `json:"week"` // the week's start, Monday 00:00 UTC
	Videos  []TrackerWeekCurve `json:"videos"`
	// Full: the videos' samples before the week are included too (the
	// first run, before any band snapshot exists).
	Full bool `json:"full,omitempty"`
}

// TrackerWeekCurve is one video's samples in an outlier job.
type TrackerWeekCurve struct {
	ID    string   `json:"id"`
	First int64    `json:"first"` // its first sample, Unix seconds
	At    []int64  `json:"at"`
	Views []uint64 `json:"views"`
}

// Tracker job kinds, the first token of a job id.
const (
	TrackerKindChannel = "channel"
	TrackerKindHourly  = "hourly"
	TrackerKindDaily   = "daily"
	TrackerKindHiRes   = "hires"
)

// TrackerChannelJob is the subject of the job checking channel id.
func TrackerChannelJob(id string) string { return trackChannelPrefix + id }

// TrackerVideoJob is the subject of the job sampling video id.
func TrackerVideoJob(id string) string { return trackVideoPrefix + id }

// TrackerJobID is the Nats-Msg-Id of a job: kind:id:slot, slot in Unix
// seconds.
func TrackerJobID(kind, id string, slot time.Time) string {
	return kind + ":" + id + ":" + strconv.FormatInt(slot.Unix(), 10)
}

// TrackerJob is the payload of a job on TRACK.
type TrackerJob struct {
	Kind string    `json:"kind"` // TrackerKindChannel, TrackerKindHourly, TrackerKindDaily or TrackerKindHiRes
	ID   string    `json:"id"`   // channel or video id
	Slot time.Time `json:"slot"` // the sampling slot the tick stands for
}

// TrackerChannel is a channel's tracking record.
type TrackerChannel struct {
	ID            string    `json:"id"`
	Title         string    `json:"title"`
	Handle        string    `json:"handle,omitempty"`
	LatestVideoID string    `json:"latest_video_id,omitempty"`
	Checked       time.Time `json:"checked,omitzero"` // last successful RSS check
	Created       time.Time `json:"created"`
	// Failed and Failure are the last check that failed (YouTube did not
	// answer or refused us); cleared by the next successful check.
	Failed  time.Time `json:"failed,omitzero"`
	Failure string    `json:"failure,omitempty"`
}

// TrackerVideo is a video's tracking record: what the last sample saw, so
// the next one can tell a thumbnail or title change.
type TrackerVideo struct {
	ID          string    `json:"id"`
	ChannelID   string    `json:"channel_id,omitempty"`
	Title       string    `json:"title,omitempty"`
	ThumbHash   string    `json:"thumb_hash,omitempty"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	Views       int64     `json:"views"`
	Likes       int64     `json:"likes,omitempty"`
	Sampled     time.Time `json:"sampled,omitzero"` // slot of the last sample
	FirstSeen   time.Time `json:"first_seen"`
	// State is what YouTube last said hides the video from signed-out
	// visitors (private, removed, age_restricted, members_only,
	// unavailable), with its words in StateReason; empty while it plays.
	State       string `json:"state,omitempty"`
	StateReason string `json:"state_reason,omitempty"`
}

// TrackerYouTubeStatusKey holds a YouTubeStatus: the last time YouTube
// refused the tracker workers, for the pages to say so.
const TrackerYouTubeStatusKey = "youtube.status"

// TrackerYouTubeStatus is the last refusal of us by YouTube (bot check, consent
// wall, rate limit, sign-in wall) a tracker worker saw.
type TrackerYouTubeStatus struct {
	RefusedAt time.Time `json:"refused_at"`
	Kind      string    `json:"kind"`
	Reason    string    `json:"reason,omitempty"`
}

// TrackerLink is a mapping record (user↔channel, user↔video, channel→video,
// credits).
type TrackerLink struct {
	Since time.Time `json:"since"`
}

// TrackerClaims is the set of ids a user's plan counts: the channels they
// track, or the videos that spent a credit in one month. It is written only
// with compare-and-set, so parallel requests cannot both take the last
// place under a limit.
type TrackerClaims struct {
	IDs []string `json:"ids"`
}

// TrackerWindow is an hourly or daily sampling record; it lives until Until
// (its per-key TTL).
type TrackerWindow struct {
	Until time.Time `json:"until"`
}

// TrackerHiRes is a premium user's choice of high-resolution sampling for
// a video; it lives until Until (its per-key TTL), the end of the video's
// first TrackerHiResWindow.
type TrackerHiRes struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// Tracker KV keys.
func TrackerChannelKey(cid string) string          { return "channel." + cid }
func TrackerChannelUserKey(cid, uid string) string { return "channel." + cid + ".user." + uid }
func TrackerChannelVideoKey(cid, vid string) string {
	return "channel." + cid + ".video." + vid
}
func TrackerVideoKey(vid string) string          { return "video." + vid }
func TrackerVideoUserKey(vid, uid string) string { return "video." + vid + ".user." + uid }
func TrackerUserChannelKey(uid, cid string) string {
	return "user." + uid + ".channel." + cid
}
func TrackerUserVideoKey(uid, vid string) string { return "user." + uid + ".video." + vid }
func TrackerCreditKey(uid, month, vid string) string {
	return "user." + uid + ".credit." + month + "." + vid
}
func TrackerUserChannelClaimsKey(uid string) string { return "user." + uid + ".claims.channels" }

// TrackerUserHiResClaimsKey is the TrackerClaims record of the videos
// user uid has sampled at high resolution, which the per-user cap counts.
func TrackerUserHiResClaimsKey(uid string) string { return "user." + uid + ".claims.hires" }
func TrackerUserCreditClaimsKey(uid, month string) string {
	return "user." + uid + ".claims.credits." + month
}
func TrackerDigestOffKey(uid string) string { return "user." + uid + ".digest.off" }
func TrackerDigestSentKey(uid, week string) string {
	return "user." + uid + ".digest." + week
}
func TrackerHourlyKey(vid string) string { return "hourly." + vid }
func TrackerDailyKey(vid string) string  { return "daily." + vid }
func TrackerHiResKey(vid, uid string) string {
	return "hires." + vid + "." + uid
}

// Key filters for listing.
const (
	TrackerAllChannels = "channel.*"
	TrackerAllVideos   = "video.*"
	TrackerAllHourly   = "hourly.*"
	TrackerAllDaily    = "daily.*"
	TrackerAllHiRes    = "hires.*.*"
)

// TrackerVideoHiRes filters who chose high resolution for video vid;
// TrackerUserHiRes the videos user uid chose it for.
func TrackerVideoHiRes(vid string) string { return "hires." + vid + ".*" }
func TrackerUserHiRes(uid string) string  { return "hires.*." + uid }

// TrackerUserChannels, TrackerUserVideos, TrackerUserCredits,
// TrackerChannelUsers and TrackerChannelVideos filter the mappings.
func TrackerUserChannels(uid string) string { return "user." + uid + ".channel.*" }
func TrackerUserVideos(uid string) string   { return "user." + uid + ".video.*" }
func TrackerUserCredits(uid, month string) string {
	return "user." + uid + ".credit." + month + ".*"
}
func TrackerChannelUsers(cid string) string  { return "channel." + cid + ".user.*" }
func TrackerChannelVideos(cid string) string { return "channel." + cid + ".video.*" }

// TrackerVideoUsers filters who tracks video vid on its own;
// TrackerUserAllCredits every credit user uid spent, all months.
func TrackerVideoUsers(vid string) string     { return "video." + vid + ".user.*" }
func TrackerUserAllCredits(uid string) string { return "user." + uid + ".credit.*.*" }

// TrackerAllUserChannels and TrackerAllUserVideos filter everyone's
// mappings (the digest lists its recipients from them);
// TrackerUserDigest every digest key of uid.
const (
	TrackerAllUserChannels = "user.*.channel.*"
	TrackerAllUserVideos   = "user.*.video.*"
)

func TrackerUserDigest(uid string) string { return "user." + uid + ".digest.*" }

// TrackerUserAllClaims filters every TrackClaims record of user uid.
func TrackerUserAllClaims(uid string) string { return "user." + uid + ".claims.>" }

// LastToken is the last dot-separated token of a key or subject.
func LastToken(s string) string { return s[strings.LastIndexByte(s, '.')+1:] }

// trackerTicks are the schedules the tracker consumes.
var trackerTicks = []string{TrackerChannelTick, TrackerVideoHourlyTick, TrackerVideoDailyTick}

// trackerAssets declares the Tracker's streams, consumers and buckets
// (seed 000).
func trackerAssets(o Options) assetSet {
	r := o.replicas()
	var ticks []string
	for _, t := range trackerTicks {
		ticks = append(ticks, ScheduleTick(t))
	}
	job := func(durable, desc, filter string, ackWait time.Duration) jetstream.ConsumerConfig {
		return jetstream.ConsumerConfig{
			Durable: durable, Description: desc, FilterSubject: filter,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
			MaxDeliver: 6, MaxAckPending: 4096, Replicas: r,
		}
	}
	return assetSet{
		Streams: []jetstream.StreamConfig{{
			Name:        TrackerStream,
			Description: "Tracker jobs: track.channel.<cid> (RSS check), track.video.<vid> (sample), track.outliers.<cid> (weekly band and outliers)",
			Subjects:    []string{trackChannelPrefix + "*", trackVideoPrefix + "*", trackOutliersPrefix + "*"},
			Retention:   jetstream.WorkQueuePolicy,
			// A job older than a day is superseded by the next tick's.
			MaxAge:     24 * time.Hour,
			Storage:    jetstream.FileStorage,
			Replicas:   r,
			Duplicates: TrackerDedupeWindow,
		}},
		Consumers: map[string][]jetstream.ConsumerConfig{
			SchedulesStream: {{
				Durable:        TrackerTickConsumer,
				Description:    "tracker-ticks role: turn schedule ticks into TRACK jobs",
				FilterSubjects: ticks,
				DeliverPolicy:  jetstream.DeliverNewPolicy,
				AckPolicy:      jetstream.AckExplicitPolicy,
				// Listing and enqueueing 100K items takes a while.
				AckWait:       5 * time.Minute,
				MaxDeliver:    5,
				MaxAckPending: 16,
				Replicas:      r,
			}, {
				// High resolution has its own role and consumer: its tick
				// comes every 2 minutes and must not queue behind the
				// hourly one listing every video.
				Durable:       TrackerHiResConsumer,
				Description:   "tracker-hires role: turn the 2-minute tick into TRACK jobs for premium high-resolution videos",
				FilterSubject: ScheduleTick(TrackerVideoHiResTick),
				DeliverPolicy: jetstream.DeliverNewPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       time.Minute,
				MaxDeliver:    5,
				MaxAckPending: 4,
				Replicas:      r,
			}, {
				// The outlier tick has its own role: its work is ClickHouse
				// and mail, not tracking jobs.
				Durable:       TrackerOutliersConsumer,
				Description:   "tracker-outliers role: weekly outlier snapshot and digest mails",
				FilterSubject: ScheduleTick(TrackerOutliersWeeklyTick),
				DeliverPolicy: jetstream.DeliverNewPolicy,
				AckPolicy:     jetstream.AckExplicitPolicy,
				AckWait:       10 * time.Minute,
				MaxDeliver:    5,
				MaxAckPending: 1,
				Replicas:      r,
			}},
			TrackerStream: {
				job(TrackerChannelConsumer, "tracker-channels role: read channel RSS feeds", trackChannelPrefix+"*", 2*time.Minute),
				job(TrackerVideoConsumer, "tracker-videos role: scrape watch pages, hash thumbnails, store samples", trackVideoPrefix+"*", 2*time.Minute),
				job(TrackerOutlierChannelConsumer, "tracker-outlier-channels role: update a channel's band snapshot with the week's samples, write its outliers", trackOutliersPrefix+"*", 2*time.Minute),
			},
		},
		KeyValues: []jetstream.KeyValueConfig{{
			Bucket:      TrackerBucket,
			Description: "Tracker: channel and video tracking records, user mappings, hourly/daily windows (per-key TTL)",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			// Per-key TTLs (hourly/daily windows) need limit markers.
			LimitMarkerTTL: time.Minute,
		}},
	}
}
