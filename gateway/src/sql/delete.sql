WITH updated AS (
  UPDATE {schema}.messages SET deleted = true
  WHERE channel_id = $1 AND message_id = ANY ($2) AND NOT deleted
  RETURNING channel_id, message_id, posted_at)
INSERT INTO {schema}.outbox (channel_id, message_id, posted_at, event, payload)
SELECT channel_id, message_id, posted_at, 'delete',
  jsonb_build_object('event', 'delete', 'channel_id', channel_id, 'message_id', message_id)
FROM updated ORDER BY message_id
RETURNING id, message_id, payload
