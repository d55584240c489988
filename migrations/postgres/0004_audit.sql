-- Admin changes (CLI and scheduled), with the acting OS user. Never secrets or tokens.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    client_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
