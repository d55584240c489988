-- Resource services (issue 13).
-- Per-client custom claims, a JSON object added to every token the client gets.
ALTER TABLE clients ADD COLUMN claims TEXT NOT NULL DEFAULT '{}';

-- Managed API keys: for callers that can only send a header. Only a SHA-256 of the key is kept
-- (the key is 256 random bits, so a slow hash would add nothing); resource services check keys
-- through introspection.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,    -- hex SHA-256 of the key
    scopes TEXT NOT NULL,
    audiences TEXT NOT NULL,      -- JSON array
    claims TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);

-- The revocation feed: every revocation gets the next number of one counter, taken in the
-- revoking transaction, so a reader that has seen N has seen everything up to N.
ALTER TABLE meta ADD COLUMN revocation_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE revoked_tokens ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE revoked_tokens SET seq = rowid;
UPDATE meta SET revocation_seq = (SELECT COALESCE(MAX(seq), 0) FROM revoked_tokens);
CREATE INDEX revoked_tokens_seq ON revoked_tokens (seq);
