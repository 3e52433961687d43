-- hookd's PostgreSQL schema, version 8: `hookd listen` sessions. A listening session is a
-- temporary webhook (URL `hookd-listen://<id>`); `listen_seen_at` (NULL for every other
-- webhook) is when its stream was last known to be connected, and one not seen for a
-- while is deleted; `listen_node` is the node its stream is connected to, the only one
-- that claims its deliveries.
ALTER TABLE webhooks
    ADD COLUMN listen_seen_at BIGINT,
    ADD COLUMN listen_node TEXT;
CREATE INDEX webhooks_listening ON webhooks (listen_seen_at) WHERE listen_seen_at IS NOT NULL;
