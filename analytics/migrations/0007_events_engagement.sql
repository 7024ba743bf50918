-- Engagement in the live event app (seed 001, "Analytics and exports"),
-- written by the events-engagement role through the batch writer: one row
-- per occurrence (subjects.EventsEngagement). id identifies the occurrence
-- within its event and kind (a heartbeat's id is its participant and
-- minute), so every figure counts distinct ids (uniqExact) and is exact
-- however often a row was written: a redelivered batch, two tabs, two
-- edges. ReplacingMergeTree on (event_id, kind, id) also collapses the
-- copies on merge. user_id is the participant's account id: a GDPR
-- deletion removes their rows (ALTER TABLE … DELETE WHERE user_id = …).
-- at and minute are UTC instants (DateTime; 18.16 has no DateTime64).
CREATE TABLE IF NOT EXISTS events_engagement (
    event_id String,
    kind     String,
    id       String,
    user_id  String,
    room     String,
    ref      String,
    at       DateTime,
    minute   DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(at)
ORDER BY (event_id, kind, id);

-- The accumulated figures of an event (events-post role), kept so the
-- analytics page never recomputes them: one row per figure, metric naming
-- it and key its breakdown (a ticket type, a minute, a bucket, a currency).
-- A re-fired accumulation rewrites the same rows (ReplacingMergeTree by
-- computed).
CREATE TABLE IF NOT EXISTS events_summary (
    event_id String,
    metric   String,
    key      String,
    value    Float64,
    computed DateTime
) ENGINE = ReplacingMergeTree(computed)
ORDER BY (event_id, metric, key);
