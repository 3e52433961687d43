-- hookd's SQLite schema, version 8: endpoint health. Counters every recorded attempt moves
-- (see hookd-core `health`); `failing_since` is when the current failure streak began
-- (NULL once an attempt succeeds), which decides when a failing webhook is disabled.
ALTER TABLE webhooks ADD COLUMN attempts_succeeded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN attempts_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN last_success_at INTEGER;
ALTER TABLE webhooks ADD COLUMN last_failure_at INTEGER;
ALTER TABLE webhooks ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;
