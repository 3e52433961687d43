-- hookd's PostgreSQL schema, version 1. Times are unix milliseconds. Same shape as the
-- SQLite schema, so both backends answer alike.

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_sha256 BYTEA NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE webhooks (
    key              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL REFERENCES clients(id),
    url              TEXT NOT NULL,
    events           TEXT NOT NULL,      -- JSON array of filters
    format           TEXT NOT NULL,
    signature_header TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    disabled_reason  TEXT,
    description      TEXT,
    metadata         TEXT NOT NULL,      -- JSON object, kept as text: key order matters
    secret           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    deleted_at       BIGINT
);
CREATE INDEX webhooks_by_client ON webhooks(client_id, key) WHERE deleted_at IS NULL;
CREATE INDEX webhooks_enabled ON webhooks(key) WHERE enabled;

CREATE TABLE event_types (
    client_id   TEXT NOT NULL REFERENCES clients(id),
    name        TEXT NOT NULL,
    description TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (client_id, name)
);

CREATE TABLE events (
    key             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id       TEXT NOT NULL,
    id              TEXT NOT NULL,
    idempotency_key TEXT,
    type            TEXT NOT NULL,
    data            TEXT NOT NULL,       -- canonical JSON, byte for byte what is signed
    received_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX events_by_id ON events(client_id, id);
CREATE UNIQUE INDEX events_by_idempotency_key ON events(client_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_by_client ON events(client_id, key);

CREATE TABLE deliveries (
    key             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_key       BIGINT NOT NULL REFERENCES events(key),
    webhook_key     BIGINT NOT NULL REFERENCES webhooks(key),
    state           SMALLINT NOT NULL,   -- 0 pending, 1 succeeded, 2 failed, 3 cancelled
    attempts        INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,     -- due time; while leased, the lease's end
    lease_token     BIGINT,
    last_status     INTEGER,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_due_by_webhook ON deliveries(webhook_key, next_attempt_at) WHERE state = 0;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE state = 0;
CREATE INDEX deliveries_by_event ON deliveries(event_key);

CREATE TABLE attempts (
    key              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL,
    delivery_key     BIGINT NOT NULL REFERENCES deliveries(key),
    event_key        BIGINT NOT NULL,
    webhook_key      BIGINT NOT NULL,
    attempt_number   INTEGER NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    format           TEXT NOT NULL,
    request_headers  TEXT NOT NULL,      -- JSON array of [name, value]
    response_status  INTEGER,
    response_headers TEXT NOT NULL,
    response_body    TEXT,
    error            TEXT
);
CREATE INDEX attempts_by_event ON attempts(event_key);

-- Lease tokens are unique across every node sharing the database.
CREATE SEQUENCE lease_tokens;
