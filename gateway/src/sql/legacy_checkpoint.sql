-- How far each channel of the batch got, in the batch's own transaction.
INSERT INTO {schema}.legacy_import AS l (channel_id, last_message_id, rows_read, messages, duplicates_collapsed)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
ON CONFLICT (channel_id) DO UPDATE
SET last_message_id = greatest(l.last_message_id, EXCLUDED.last_message_id),
    rows_read = l.rows_read + EXCLUDED.rows_read,
    messages = l.messages + EXCLUDED.messages,
    duplicates_collapsed = l.duplicates_collapsed + EXCLUDED.duplicates_collapsed,
    updated_at = now()
