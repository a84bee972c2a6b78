SELECT channel_id, message_id, posted_at, text, sender_id,
reply_to_message_id, media_type, edit_date, deleted, raw, received_at FROM {schema}.messages
WHERE channel_id = $1 AND message_id = $2 ORDER BY posted_at DESC LIMIT 1
