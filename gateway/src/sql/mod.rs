//! The gateway's SQL: one statement per file in this directory, compiled in. [`prepare`]
//! turns a file into the text sent to the server; nothing else fills in names.

use tgstack::model::schema_names::MESSAGES_UNIQUE_CONSTRAINT;

macro_rules! statements {
    ($($name:ident => $file:literal,)*) => {
        $(pub const $name: &str = include_str!($file);)*

        /// Every statement file: (file name, text as written).
        pub const FILES: &[(&str, &str)] = &[$(($file, $name)),*];
    };
}

statements! {
    CREATE_TEMP => "create_temp.sql",
    COPY_IN => "copy_in.sql",
    INSERT_NEW => "insert_new.sql",
    EDIT => "edit.sql",
    INSERT_EDITED => "insert_edited.sql",
    DELETE => "delete.sql",
    UNPUBLISHED_CHANNELS => "unpublished_channels.sql",
    UNPUBLISHED => "unpublished.sql",
    MARK_PUBLISHED => "mark_published.sql",
    LAST_MESSAGE_ID => "last_message_id.sql",
    OUTBOX_DEPTH => "outbox_depth.sql",
    API_MESSAGES => "api_messages.sql",
    API_MESSAGE => "api_message.sql",
    API_CHANNELS => "api_channels.sql",
    CACHE_ROWS => "cache_rows.sql",
    CACHE_WINDOW => "cache_window.sql",
    DATABASE_EXISTS => "database_exists.sql",
    RELATION_EXISTS => "relation_exists.sql",
    APPLIED_MIGRATIONS => "applied_migrations.sql",
    LEGACY_CREATE_TEMP => "legacy_create_temp.sql",
    LEGACY_COPY_IN => "legacy_copy_in.sql",
    LEGACY_ANALYZE => "legacy_analyze.sql",
    LEGACY_INSERT => "legacy_insert.sql",
    LEGACY_INSERT_QUIET => "legacy_insert_quiet.sql",
    LEGACY_REFRESH => "legacy_refresh.sql",
    LEGACY_CHECKPOINT => "legacy_checkpoint.sql",
    LEGACY_CHECKPOINTS => "legacy_checkpoints.sql",
    LEGACY_VERIFY_ROWS => "legacy_verify_rows.sql",
    LEGACY_SINCE_IMPORT => "legacy_since_import.sql",
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The text sent to the server for a statement file: `{messages_unique_constraint}`
/// becomes the constraint the rendered migration creates and `{schema}` the quoted schema
/// (identifiers cannot be bound); comment lines are dropped and the other lines joined
/// with single spaces, so the file's layout never reaches the server.
pub fn prepare(file: &str, schema: &str) -> String {
    file.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ")
        .replace("{messages_unique_constraint}", MESSAGES_UNIQUE_CONSTRAINT)
        .replace("{schema}", &quote_ident(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("te\"le"), "\"te\"\"le\"");
    }
}
