-- History stored without publishing (no `--publish`): ON CONFLICT DO NOTHING keeps what is
-- already there; no outbox row, so no join back to the batch.
WITH inserted AS (
  INSERT INTO {schema}.messages (channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date, deleted, received_at)
  SELECT channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date, deleted, received_at
  FROM gw_legacy
  ON CONFLICT ON CONSTRAINT {messages_unique_constraint} DO NOTHING
  RETURNING 1)
SELECT count(*) AS stored, 0::bigint AS queued FROM inserted
