-- The admin API's ETag (issue 12) is a client's last recorded revision: read per client.
CREATE INDEX audit_events_client ON audit_events (client_id, revision);
