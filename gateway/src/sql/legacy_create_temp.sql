-- One batch of history from the legacy database, already collapsed to one row per message.
CREATE TEMP TABLE gw_legacy (channel_id bigint NOT NULL, message_id bigint NOT NULL,
posted_at timestamptz NOT NULL, text text NOT NULL, sender_id bigint,
reply_to_message_id bigint, media_type text, raw jsonb NOT NULL, edit_date timestamptz,
deleted boolean NOT NULL, received_at timestamptz NOT NULL, payload jsonb) ON COMMIT DROP
