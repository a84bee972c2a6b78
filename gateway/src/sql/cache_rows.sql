-- The rows a batch changed, as the API lists them, for the read cache (read after the
-- batch committed, so the cache holds what the database holds).
SELECT channel_id, message_id, posted_at, text, sender_id,
reply_to_message_id, media_type, edit_date, deleted FROM {schema}.messages
WHERE (channel_id, message_id) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))
