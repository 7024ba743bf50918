-- The Enricher's emitted lessons (seed 004), one row per OUTPUT message.
-- ReplacingMergeTree on (completed_at, output_seq): completed_at is the
-- OUTPUT message's own timestamp, so a redelivered message writes the same
-- row again and it collapses on merge and under FINAL.
CREATE TABLE IF NOT EXISTS enricher_lessons (
    completed_at        DateTime,
    output_seq          UInt64,
    user_uuid           String,
    language            String,
    course_uuid         String,
    subscription_type   String,
    subscription_status String,
    country             String,
    enrichment          String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(completed_at)
ORDER BY (completed_at, output_seq);
