-- Outbox ids follow message ids within a batch, so each channel's events are published
-- in message order whatever order the batch arrived in.
WITH inserted AS (
  INSERT INTO {schema}.messages (channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date)
  SELECT channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date FROM gw_incoming ORDER BY seq
  ON CONFLICT ON CONSTRAINT {messages_unique_constraint} DO NOTHING
  RETURNING channel_id, message_id, posted_at)
INSERT INTO {schema}.outbox (channel_id, message_id, posted_at, event, payload)
SELECT i.channel_id, i.message_id, i.posted_at, 'new', g.payload
FROM inserted i JOIN gw_incoming g USING (channel_id, message_id, posted_at)
ORDER BY i.channel_id, i.message_id
RETURNING id, channel_id, message_id, posted_at
