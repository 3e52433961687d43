-- hookd's SQLite schema, version 6: test events. An event sent with
-- `POST /v2/webhooks/{id}/test` is marked, so every attempt of its delivery (retries too)
-- carries the `webhook-test: true` header and the event lists with `"test": true`.
ALTER TABLE events ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
