-- Secretless callers (RFC 7523).
-- How a client authenticates: 'client_secret' (basic or post; the rows before this migration)
-- or 'private_key_jwt' with its public keys as a JWKS document or a JWKS URL.
ALTER TABLE clients ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'client_secret';
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;

-- private_key_jwt assertion ids seen, kept until the assertion expires: an assertion is never
-- accepted twice, on any replica sharing this database.
CREATE TABLE assertion_jtis (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);

-- Workload identity federation: tokens from an external issuer, matched by audience, subject
-- and claims, are exchanged for tokens of the bound client.
CREATE TABLE trusts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    issuer TEXT,                  -- exact `iss`; NULL for a SPIFFE trust domain
    spiffe_trust_domain TEXT,
    audience TEXT NOT NULL,
    subject TEXT NOT NULL,        -- exact, or a prefix ending in '*'
    claims TEXT NOT NULL,         -- JSON object: claim name -> required value (text)
    jwks_uri TEXT,
    jwks TEXT,
    max_token_age BIGINT,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
