-- hookd's PostgreSQL schema, version 7: endpoint health. Counters every recorded attempt
-- moves (see hookd-core `health`); `failing_since` is when the current failure streak
-- began (NULL once an attempt succeeds), which decides when a failing webhook is disabled.
-- None of these columns is indexed, so the counter updates stay HOT.
ALTER TABLE webhooks
    ADD COLUMN attempts_succeeded BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN attempts_failed BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN last_success_at BIGINT,
    ADD COLUMN last_failure_at BIGINT,
    ADD COLUMN consecutive_failures BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN failing_since BIGINT;
