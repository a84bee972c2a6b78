-- History is stored like the pipeline's new messages: ON CONFLICT DO NOTHING keeps what is
-- already there (a message the new gateway stored first, or an earlier run's row). An
-- outbox row is written only for a row with a payload (`--publish`, never a deleted one).
WITH inserted AS (
  INSERT INTO {schema}.messages (channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date, deleted, received_at)
  SELECT channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date, deleted, received_at
  FROM gw_legacy ORDER BY channel_id, message_id
  ON CONFLICT ON CONSTRAINT {messages_unique_constraint} DO NOTHING
  RETURNING channel_id, message_id, posted_at),
queued AS (
  INSERT INTO {schema}.outbox (channel_id, message_id, posted_at, event, payload)
  SELECT i.channel_id, i.message_id, i.posted_at, 'new', g.payload
  FROM inserted i JOIN gw_legacy g USING (channel_id, message_id, posted_at)
  WHERE g.payload IS NOT NULL
  ORDER BY i.channel_id, i.message_id
  RETURNING 1)
SELECT (SELECT count(*) FROM inserted) AS stored, (SELECT count(*) FROM queued) AS queued
