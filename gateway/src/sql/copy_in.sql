COPY gw_incoming (seq, channel_id, message_id, posted_at, text, sender_id, reply_to_message_id, media_type, raw, edit_date, payload) FROM STDIN (FORMAT binary)
