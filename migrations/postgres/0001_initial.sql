-- Tessera schema, PostgreSQL. Times are unix seconds. See migrations/sqlite for commentary.
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO meta (id, revision) VALUES (1, 0);

CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    audiences TEXT NOT NULL,
    token_ttl BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE client_secrets (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX client_secrets_client ON client_secrets (client_id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_key BYTEA NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    retires_at BIGINT
);
