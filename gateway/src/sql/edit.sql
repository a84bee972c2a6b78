WITH updated AS (
  UPDATE {schema}.messages SET text = $4, raw = $5, edit_date = $3,
    media_type = coalesce($6, media_type)
  WHERE channel_id = $1 AND message_id = $2
    AND (edit_date IS NULL OR edit_date < $3)
  RETURNING channel_id, message_id, posted_at)
INSERT INTO {schema}.outbox (channel_id, message_id, posted_at, event, payload)
SELECT channel_id, message_id, posted_at, 'edit', $7 FROM updated
RETURNING id
