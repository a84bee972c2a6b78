-- A channel's newest messages, deleted ones included, for the read cache's window.
SELECT channel_id, message_id, posted_at, text, sender_id,
reply_to_message_id, media_type, edit_date, deleted FROM {schema}.messages
WHERE channel_id = $1
ORDER BY posted_at DESC, message_id DESC LIMIT $2
