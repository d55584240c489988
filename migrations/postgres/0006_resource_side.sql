-- Resource services (issue 13). See migrations/sqlite for commentary.
ALTER TABLE clients ADD COLUMN claims TEXT NOT NULL DEFAULT '{}';

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    audiences TEXT NOT NULL,
    claims TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);

ALTER TABLE meta ADD COLUMN revocation_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE revoked_tokens ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE revoked_tokens SET seq = numbered.n
    FROM (SELECT jti, row_number() OVER (ORDER BY jti) AS n FROM revoked_tokens) AS numbered
    WHERE revoked_tokens.jti = numbered.jti;
UPDATE meta SET revocation_seq = (SELECT COALESCE(MAX(seq), 0) FROM revoked_tokens);
CREATE INDEX revoked_tokens_seq ON revoked_tokens (seq);
