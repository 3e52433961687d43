-- hookd's SQLite schema, version 4: retention. Purging walks events oldest first.
CREATE INDEX events_by_received_at ON events(received_at);
