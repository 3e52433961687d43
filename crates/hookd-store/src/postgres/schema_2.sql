-- hookd's PostgreSQL schema, version 2: secret rotation. The secret a rotation replaced
-- keeps signing until previous_secret_until (unix ms); after that it is ignored, and the
-- next rotation overwrites it.
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE webhooks ADD COLUMN previous_secret_until BIGINT;
