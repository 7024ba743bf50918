-- Who sent each lesson: the account owning the ingest API key it came in
-- with (the OUTPUT header Jetfleet-Owner), '' for events published straight
-- to NATS or with a key that has no owner. The /enricher page shows a user
-- only their own rows; operators see all. Rows written before this
-- migration read as ''.
ALTER TABLE enricher_lessons ADD COLUMN owner String DEFAULT '';
