SELECT id, channel_id, message_id, event, payload FROM {schema}.outbox
WHERE published_at IS NULL AND channel_id = $1 ORDER BY id LIMIT $2
