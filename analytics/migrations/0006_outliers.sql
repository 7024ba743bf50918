-- The Tracker's weekly outlier snapshot (seed 000, "Outliers Detection"),
-- written by the tracker-outliers role when the outliers-weekly tick fires.
-- week is the instant the analysed week starts (Monday 00:00 UTC), kept as a
-- DateTime so no server time zone can move it to another day.
--
-- channel_bands: a channel's expected band, the interquartile range and
-- median of the views its recent videos had at the same age (age_hours since
-- a video's first sample: whole hours in the first week, whole days after).
-- ReplacingMergeTree on (channel_id, week, age_hours): a re-fired tick
-- rewrites the same rows.
CREATE TABLE IF NOT EXISTS channel_bands (
    channel_id String,
    week       DateTime,
    age_hours  UInt32,
    videos     UInt32,
    p25        Float64,
    p50        Float64,
    p75        Float64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(week)
ORDER BY (channel_id, week, age_hours);

-- outliers: the week's outliers. kind 'channel' is a video far above its
-- channel's band (score = views / channel median at the same age); kind
-- 'thumbnail', 'title' or 'thumbnail+title' is a video whose view rate
-- jumped after that one change (score = views per hour after / before).
-- expected is the channel median, or the views per hour before the change;
-- low/high the band's edges (0 for change outliers). at is the sample the
-- score was read at, or the change.
CREATE TABLE IF NOT EXISTS outliers (
    week       DateTime,
    channel_id String,
    video_id   String,
    kind       String,
    score      Float64,
    views      UInt64,
    expected   Float64,
    low        Float64,
    high       Float64,
    at         DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(week)
ORDER BY (week, channel_id, video_id, kind);
