-- Tessera schema, SQLite. Times are unix seconds.

-- One row; `revision` increases with every change to clients, secrets or keys, so running
-- servers notice changes made by the CLI (or another replica) with one cheap query.
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO meta (id, revision) VALUES (1, 0);

CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,         -- space-separated RFC 6749 scope tokens
    audiences TEXT NOT NULL,      -- JSON array; the first is the default
    token_ttl INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE client_secrets (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,           -- argon2id PHC string; the plaintext is never stored
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX client_secrets_client ON client_secrets (client_id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_key BLOB NOT NULL,    -- nonce || AES-256-GCM(PKCS#8) || tag, AAD = kid
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,  -- published from
    activates_at INTEGER NOT NULL,-- signs from
    retires_at INTEGER            -- unpublished from
);
