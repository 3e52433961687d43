-- hookd's SQLite schema, version 1. Times are unix milliseconds.

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE webhooks (
    key              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL REFERENCES clients(id),
    url              TEXT NOT NULL,
    events           TEXT NOT NULL,      -- JSON array of filters
    format           TEXT NOT NULL,
    signature_header TEXT NOT NULL,
    enabled          INTEGER NOT NULL,
    disabled_reason  TEXT,
    description      TEXT,
    metadata         TEXT NOT NULL,      -- JSON object
    secret           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    deleted_at       INTEGER
) STRICT;
CREATE INDEX webhooks_by_client ON webhooks(client_id, key) WHERE deleted_at IS NULL;

CREATE TABLE event_types (
    client_id   TEXT NOT NULL REFERENCES clients(id),
    name        TEXT NOT NULL,
    description TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (client_id, name)
) STRICT;

CREATE TABLE events (
    key             INTEGER PRIMARY KEY,
    client_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    idempotency_key TEXT,
    type            TEXT NOT NULL,
    data            TEXT NOT NULL,       -- canonical JSON
    received_at     INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX events_by_id ON events(client_id, id);
CREATE UNIQUE INDEX events_by_idempotency_key ON events(client_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_by_client ON events(client_id, key);

CREATE TABLE deliveries (
    key             INTEGER PRIMARY KEY,
    event_key       INTEGER NOT NULL REFERENCES events(key),
    webhook_key     INTEGER NOT NULL REFERENCES webhooks(key),
    state           INTEGER NOT NULL,    -- 0 pending, 1 succeeded, 2 failed, 3 cancelled
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,    -- due time; while leased, the lease's end
    lease_token     INTEGER,
    last_status     INTEGER,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE state = 0;
CREATE INDEX deliveries_by_event ON deliveries(event_key);
CREATE INDEX deliveries_pending_by_webhook ON deliveries(webhook_key) WHERE state = 0;

CREATE TABLE attempts (
    key              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL,
    delivery_key     INTEGER NOT NULL REFERENCES deliveries(key),
    event_key        INTEGER NOT NULL,
    webhook_key      INTEGER NOT NULL,
    attempt_number   INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    format           TEXT NOT NULL,
    request_headers  TEXT NOT NULL,      -- JSON array of [name, value]
    response_status  INTEGER,
    response_headers TEXT NOT NULL,
    response_body    TEXT,
    error            TEXT
) STRICT;
CREATE INDEX attempts_by_event ON attempts(event_key);
