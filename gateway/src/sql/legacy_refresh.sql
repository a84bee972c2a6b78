-- `import-legacy --refresh`: like the quiet insert, and a message the import stored before
-- takes the values read now (a later copy, a deletion or an edit in the legacy database
-- since). Rows the live gateway stored (no `raw.legacy`) are never touched.
WITH written AS (
  INSERT INTO {schema}.messages AS t (channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date, deleted, received_at)
  SELECT channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date, deleted, received_at
  FROM gw_legacy
  ON CONFLICT ON CONSTRAINT {messages_unique_constraint} DO UPDATE
  SET text = EXCLUDED.text, sender_id = EXCLUDED.sender_id,
      reply_to_message_id = EXCLUDED.reply_to_message_id, media_type = EXCLUDED.media_type,
      raw = EXCLUDED.raw, edit_date = EXCLUDED.edit_date, deleted = EXCLUDED.deleted,
      received_at = EXCLUDED.received_at
  WHERE t.raw ? 'legacy'
    AND (t.text, t.sender_id, t.reply_to_message_id, t.media_type, t.raw, t.edit_date, t.deleted, t.received_at)
        IS DISTINCT FROM (EXCLUDED.text, EXCLUDED.sender_id, EXCLUDED.reply_to_message_id, EXCLUDED.media_type, EXCLUDED.raw, EXCLUDED.edit_date, EXCLUDED.deleted, EXCLUDED.received_at)
  RETURNING (xmax = 0) AS inserted)
SELECT count(*) FILTER (WHERE inserted) AS stored, count(*) FILTER (WHERE NOT inserted) AS updated FROM written
