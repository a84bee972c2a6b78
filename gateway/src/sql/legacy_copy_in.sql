COPY gw_legacy (channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date, deleted, received_at, payload) FROM STDIN (FORMAT binary)
