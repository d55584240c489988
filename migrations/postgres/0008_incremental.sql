-- Incremental refresh (issue 14): see migrations/sqlite.
ALTER TABLE audit_events ADD COLUMN revision BIGINT;
CREATE INDEX audit_events_revision ON audit_events (revision);
