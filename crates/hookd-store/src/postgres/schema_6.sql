-- hookd's PostgreSQL schema, version 6: replay. A bulk replay (`POST /v2/webhooks/{id}/replay`)
-- is a job the engine works through in batches: it walks the webhook's deliveries in
-- event order, from `cursor` (the last event key dealt with) up to `last_event_key` (the
-- newest event it can concern, fixed when it was made), and re-sends the events of the
-- window [since_ms, until_ms) whose latest delivery is in a state `status_filter` admits.
-- Nodes may run the same job at once: each batch locks the job's row and moves on only
-- from the cursor it expected.
CREATE TABLE replay_jobs (
    key            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL,
    webhook_key    BIGINT NOT NULL REFERENCES webhooks(key),
    since_ms       BIGINT NOT NULL,
    until_ms       BIGINT,
    status_filter  TEXT NOT NULL,        -- failed, succeeded, cancelled or all
    state          TEXT NOT NULL,        -- running, completed or cancelled
    total          BIGINT NOT NULL,
    done           BIGINT NOT NULL,
    cursor         BIGINT NOT NULL,
    last_event_key BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    completed_at   BIGINT
);
-- A webhook's jobs, newest first.
CREATE INDEX replay_jobs_by_webhook ON replay_jobs(webhook_key, key);
-- What every node looks for every few seconds.
CREATE INDEX replay_jobs_running ON replay_jobs(key) WHERE state = 'running';
-- A batch walks one webhook's deliveries in event order, each event's deliveries newest
-- first (counting a job's total walks the same range).
CREATE INDEX deliveries_by_webhook_event ON deliveries(webhook_key, event_key, key DESC);
