SELECT {schema}.last_message_id($1)
