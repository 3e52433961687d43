-- hookd's SQLite schema, version 2: claims probe each webhook's own queue.
DROP INDEX deliveries_pending_by_webhook;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due_by_webhook ON deliveries(webhook_key, next_attempt_at) WHERE state = 0;
