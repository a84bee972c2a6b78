SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL
