SELECT DISTINCT channel_id FROM {schema}.outbox WHERE published_at IS NULL
