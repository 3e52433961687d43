-- hookd's SQLite schema, version 5: a webhook's delivery log (`GET
-- /v2/webhooks/{id}/deliveries`) walks its deliveries newest first.
CREATE INDEX deliveries_by_webhook ON deliveries(webhook_key, key);
