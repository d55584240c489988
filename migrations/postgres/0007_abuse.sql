-- Abuse resistance (issue 14): a client's own token quota (NULL: the server's default).
ALTER TABLE clients ADD COLUMN max_tokens_per_minute BIGINT;
