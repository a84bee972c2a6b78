-- An edit of a message the gateway never saw (update streams drop messages): store it as
-- it is now, and publish it as the edit it arrived as.
WITH inserted AS (
  INSERT INTO {schema}.messages (channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date)
  SELECT $1, $2, $8, $4, $9, $10, $6, $5, $3
  WHERE NOT EXISTS (SELECT 1 FROM {schema}.messages WHERE channel_id = $1 AND message_id = $2)
  ON CONFLICT ON CONSTRAINT {messages_unique_constraint} DO NOTHING
  RETURNING channel_id, message_id, posted_at)
INSERT INTO {schema}.outbox (channel_id, message_id, posted_at, event, payload)
SELECT channel_id, message_id, posted_at, 'edit', $7 FROM inserted
RETURNING id
