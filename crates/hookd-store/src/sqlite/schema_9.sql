-- hookd's SQLite schema, version 9: `hookd listen` sessions. A listening session is a
-- temporary webhook (URL `hookd-listen://<id>`); `listen_seen_at` (NULL for every other
-- webhook) is when its stream was last known to be connected, and one not seen for a
-- while is deleted. One process serves a SQLite file, so no owner is recorded.
ALTER TABLE webhooks ADD COLUMN listen_seen_at INTEGER;
CREATE INDEX webhooks_listening ON webhooks (listen_seen_at) WHERE listen_seen_at IS NOT NULL;
