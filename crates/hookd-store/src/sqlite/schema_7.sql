-- hookd's SQLite schema, version 7: replay. A bulk replay (`POST /v2/webhooks/{id}/replay`)
-- is a job the engine works through in batches: it walks the webhook's deliveries in
-- event order, from `cursor` (the last event key dealt with) up to `last_event_key` (the
-- newest event it can concern, fixed when it was made), and re-sends the events of the
-- window [since_ms, until_ms) whose latest delivery is in a state `status_filter` admits.
CREATE TABLE replay_jobs (
    key            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL,
    webhook_key    INTEGER NOT NULL REFERENCES webhooks(key),
    since_ms       INTEGER NOT NULL,
    until_ms       INTEGER,
    status_filter  TEXT NOT NULL,        -- failed, succeeded, cancelled or all
    state          TEXT NOT NULL,        -- running, completed or cancelled
    total          INTEGER NOT NULL,
    done           INTEGER NOT NULL,
    cursor         INTEGER NOT NULL,
    last_event_key INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    completed_at   INTEGER
) STRICT;
-- A webhook's jobs, newest first.
CREATE INDEX replay_jobs_by_webhook ON replay_jobs(webhook_key, key);
-- What the engine looks for every few seconds.
CREATE INDEX replay_jobs_running ON replay_jobs(key) WHERE state = 'running';
-- A batch walks one webhook's deliveries in event order (and counting a job's total
-- walks the same range); the rowid that ends each entry orders an event's deliveries.
CREATE INDEX deliveries_by_webhook_event ON deliveries(webhook_key, event_key);
