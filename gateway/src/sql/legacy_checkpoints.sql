SELECT channel_id, last_message_id FROM {schema}.legacy_import ORDER BY channel_id
