package subjects

// A Schedule is a server-side message schedule (NATS 2.14+): its definition is
// a message on ScheduleDef(Name) carrying a Nats-Schedule header, and the
// server publishes Payload on ScheduleTick(Name) whenever Cron fires. One
// schedule per kind of periodic work, never one per item: the tick handler
// lists the live items and enqueues a job each.
type Schedule struct {
	Name        string
	Cron        string // six fields: second minute hour day-of-month month day-of-week
	TimeZone    string // IANA name; empty means UTC
	Description string
}

// Schedule names.
const (
	// TrackerChannelTick checks every tracked channel for new uploads, ten minutes
	// before the hourly video tick so a new upload is sampled in its first
	// hour.
	TrackerChannelTick = "channel-hourly"
	// TrackerVideoHourlyTick samples every video in its first 7 days.
	TrackerVideoHourlyTick = "video-hourly"
	// TrackerVideoDailyTick samples every video up to 60 days old.
	TrackerVideoDailyTick = "video-daily"
	// TrackerOutliersWeeklyTick runs the outlier analysis and sends the digest.
	TrackerOutliersWeeklyTick = "outliers-weekly"
	// TrackerVideoHiResTick samples the videos a premium user chose
	// high-resolution tracking for, every TrackerHiResEvery in their first
	// 24 hours (seed 000's self-review: 1–2 minutes).
	TrackerVideoHiResTick = "video-hires"
)

// Schedules returns every periodic schedule jetfleet runs.
func Schedules() []Schedule {
	return []Schedule{
		{Name: TrackerChannelTick, Cron: "0 50 * * * *", Description: "check tracked channels for new uploads"},
		{Name: TrackerVideoHourlyTick, Cron: "0 0 * * * *", Description: "sample videos tracked hourly"},
		{Name: TrackerVideoDailyTick, Cron: "0 10 0 * * *", Description: "sample videos tracked daily"},
		{Name: TrackerOutliersWeeklyTick, Cron: "0 0 6 * * 1", Description: "weekly outlier analysis and digest"},
		{Name: TrackerVideoHiResTick, Cron: "0 */2 * * * *", Description: "sample premium high-resolution videos every 2 minutes"},
	}
}

// Tick is the payload of every schedule tick.
type Tick struct {
	Schedule string `json:"schedule"`
}
