-- The Tracker's time series: one row per video per sampling slot.
-- ReplacingMergeTree on (video_id, sampled_at): a sample replayed for the same
-- slot (a redelivered job, a retried batch) collapses into one row on merge
-- and under FINAL.
CREATE TABLE IF NOT EXISTS video_samples (
    video_id   String,
    channel_id String,
    sampled_at DateTime,
    views      UInt64,
    likes      UInt64,
    title      String,
    thumb_hash String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(sampled_at)
ORDER BY (video_id, sampled_at);

-- Title and thumbnail changes the Tracker detected between two samples.
-- kind is 'title' or 'thumbnail'; before/after hold the title text or the
-- thumbnail hash.
CREATE TABLE IF NOT EXISTS video_changes (
    video_id   String,
    changed_at DateTime,
    kind       String,
    before     String,
    after      String
) ENGINE = ReplacingMergeTree()
ORDER BY (video_id, changed_at, kind);
