SELECT {schema}.mark_published($1)
