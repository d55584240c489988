-- Incremental refresh (issue 14): each audit record names the revision its change committed,
-- so a server re-reads only the clients changed since the revision it has.
ALTER TABLE audit_events ADD COLUMN revision INTEGER;
CREATE INDEX audit_events_revision ON audit_events (revision);
