-- hookd's PostgreSQL schema, version 3: retention. Purging walks events oldest first.
CREATE INDEX events_by_received_at ON events(received_at);
