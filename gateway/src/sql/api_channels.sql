SELECT channel_id, username, title, enabled, created_at, updated_at
FROM {schema}.channels ORDER BY channel_id
