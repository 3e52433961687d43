-- hookd's PostgreSQL schema, version 5: test events. An event sent with
-- `POST /v2/webhooks/{id}/test` is marked, so every attempt of its delivery (retries too)
-- carries the `webhook-test: true` header and the event lists with `"test": true`.
ALTER TABLE events ADD COLUMN test BOOLEAN NOT NULL DEFAULT false;
