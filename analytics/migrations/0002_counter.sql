-- Counter API rollups (seed 002). counter_minute holds one row per
-- (tenant, video, type, minute) with the number of events and the sum of
-- their values; SummingMergeTree adds up rows with the same key on merge, so
-- reads always aggregate with sum() (AVG = sum(total) / sum(events)).
--
-- No PARTITION BY on purpose: a worker's flush is ONE insert block, and with a
-- single partition it becomes one part, written atomically. That is what makes
-- the flush replay-safe: the same block carries, per partition of the VIEWS
-- stream, a watermark row (tenant '', video_id 'views.<p>', type 'WM',
-- events = the increase of the highest flushed stream sequence). The
-- watermark of partition p is sum(events) of its WM rows, and it is visible
-- exactly when the counts it covers are.
--
-- index_granularity 1024 (default 8192): reads are point lookups of one
-- (tenant, video, type); smaller granules halve their latency here.
CREATE TABLE IF NOT EXISTS counter_minute (
    tenant   String,
    video_id String,
    type     String,
    minute   DateTime,
    events   UInt64,
    total    Int64
) ENGINE = SummingMergeTree((events, total))
ORDER BY (tenant, video_id, type, minute)
SETTINGS index_granularity = 1024;

-- Hourly rollup for long ranges: a 1-year read sums at most 8,760 rows per
-- video and type instead of 525,600. Filled by the view below from every
-- insert into counter_minute (watermark rows excluded).
CREATE TABLE IF NOT EXISTS counter_hour (
    tenant   String,
    video_id String,
    type     String,
    hour     DateTime,
    events   UInt64,
    total    Int64
) ENGINE = SummingMergeTree((events, total))
ORDER BY (tenant, video_id, type, hour)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS counter_hour_mv TO counter_hour AS
SELECT tenant, video_id, type, toStartOfHour(minute) AS hour, sum(events) AS events, sum(total) AS total
FROM counter_minute
WHERE tenant != ''
GROUP BY tenant, video_id, type, hour;

-- Events per tenant, type and minute, for the live events/s chart of the
-- /counter page (reading it from counter_minute would scan all the tenant's
-- videos).
CREATE TABLE IF NOT EXISTS counter_tenant_minute (
    tenant   String,
    type     String,
    minute   DateTime,
    events   UInt64,
    total    Int64
) ENGINE = SummingMergeTree((events, total))
ORDER BY (tenant, type, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS counter_tenant_minute_mv TO counter_tenant_minute AS
SELECT tenant, type, minute, sum(events) AS events, sum(total) AS total
FROM counter_minute
WHERE tenant != ''
GROUP BY tenant, type, minute;
