-- `export-legacy`: what this stack stored above the import's checkpoints (all of a channel
-- the import never saw).
SELECT m.channel_id, m.message_id, m.posted_at, m.text, m.media_type, m.received_at, m.edit_date, m.deleted, m.sender_id
FROM {schema}.messages m LEFT JOIN {schema}.legacy_import l USING (channel_id)
WHERE l.last_message_id IS NULL OR m.message_id > l.last_message_id
ORDER BY m.channel_id, m.message_id
