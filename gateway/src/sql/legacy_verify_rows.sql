-- The stored side of `import-legacy --verify`, in the order the legacy side is read.
SELECT channel_id, message_id, posted_at, text, deleted FROM {schema}.messages
WHERE channel_id = ANY($1::bigint[]) ORDER BY channel_id, message_id, posted_at
