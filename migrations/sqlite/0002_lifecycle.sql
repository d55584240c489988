-- Client expiry, and the secret/key lifecycle operations' bookkeeping.
ALTER TABLE clients ADD COLUMN expires_at INTEGER;
