-- The base of the API's keyset listing: the handler appends the filters, the cursor and
-- the order.
SELECT channel_id, message_id, posted_at, text, sender_id,
reply_to_message_id, media_type, edit_date, deleted FROM {schema}.messages
