-- Issue 14: with more clients than the server keeps in memory, the metrics' expiry gauges are
-- read from the database at scrape time; these partial indexes hold only expiring rows, so
-- that read follows the number of expiring credentials, not of clients.
CREATE INDEX clients_expiring ON clients (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX client_secrets_expiring ON client_secrets (expires_at) WHERE expires_at IS NOT NULL;
