CREATE TEMP TABLE gw_incoming (seq integer NOT NULL, channel_id bigint NOT NULL,
message_id bigint NOT NULL, posted_at timestamptz NOT NULL, text text NOT NULL,
sender_id bigint, reply_to_message_id bigint, media_type text, raw jsonb NOT NULL,
edit_date timestamptz, payload jsonb NOT NULL) ON COMMIT DROP
