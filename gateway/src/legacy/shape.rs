//! Which of the two legacy layouts a database has, and the one query that reads either
//! through a common projection (the columns of `collapse::LegacyRow`).
//!
//! - Shape A: `messages(id uuid, channel_id text, message_id bigint, status, text, caption,
//!   media_type, media_refs, telegram_date, received_at, metadata, created_at, updated_at,
//!   deleted_at, ...)`.
//! - Shape B (an older ingesting service): `messages(id bigserial, channel_id bigint,
//!   message_id text, ...)`.
//!
//! Optional columns are looked up by name, so a column one deployment never had reads as
//! NULL instead of failing the import.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::sql::quote_ident;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `channel_id text`, `message_id bigint`.
    A,
    /// `channel_id bigint`, `message_id text`.
    B,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::A => "A",
            Shape::B => "B",
        }
    }
}

/// The columns of a legacy table: name -> PostgreSQL type name.
pub type Columns = BTreeMap<String, String>;

pub(crate) fn is_text(t: &str) -> bool {
    matches!(t, "text" | "character varying" | "character")
}

pub(crate) fn is_integer(t: &str) -> bool {
    matches!(t, "bigint" | "integer" | "smallint" | "numeric")
}

/// The shape of `schema.messages`, or why it is neither.
pub fn detect(schema: &str, columns: &Columns) -> Result<Shape> {
    let table = format!("{schema}.messages");
    if columns.is_empty() {
        bail!("the legacy database has no table {table}");
    }
    let (Some(channel), Some(message)) = (columns.get("channel_id"), columns.get("message_id"))
    else {
        bail!(
            "{table} has no channel_id or no message_id column (found: {}): neither legacy shape",
            columns.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    match (channel.as_str(), message.as_str()) {
        (c, m) if is_text(c) && is_integer(m) => Ok(Shape::A),
        (c, m) if is_integer(c) && is_text(m) => Ok(Shape::B),
        (c, m) => bail!(
            "{table} has channel_id {c} and message_id {m}: neither shape A (channel_id text, \
             message_id bigint) nor shape B (channel_id bigint, message_id text)"
        ),
    }
}

/// The first of `names` the table has, as `m.<name>`.
pub(crate) fn column<'a>(columns: &Columns, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|n| columns.contains_key(*n))
}

/// `m.name` read as timestamptz (epoch seconds in an integer column are converted).
fn timestamp(columns: &Columns, names: &[&str]) -> String {
    match column(columns, names) {
        Some(name) if is_integer(&columns[name]) => {
            format!("to_timestamp(m.{})", quote_ident(name))
        }
        Some(name) => format!("m.{}::timestamptz", quote_ident(name)),
        None => "NULL::timestamptz".into(),
    }
}

fn text(columns: &Columns, names: &[&str]) -> String {
    match column(columns, names) {
        Some(name) => format!("m.{}::text", quote_ident(name)),
        None => "NULL::text".into(),
    }
}

/// Whether a row is deleted: any of the deletion markers the table has.
fn deleted(columns: &Columns) -> String {
    let mut markers = Vec::new();
    if columns.contains_key("status") {
        markers.push("m.status::text = 'deleted'".to_string());
    }
    if columns.contains_key("deleted_at") {
        markers.push("m.deleted_at IS NOT NULL".into());
    }
    for flag in ["is_deleted", "deleted"] {
        if columns.get(flag).map(String::as_str) == Some("boolean") {
            markers.push(format!("m.{}", quote_ident(flag)));
        }
    }
    if markers.is_empty() {
        "false".into()
    } else {
        format!("coalesce({}, false)", markers.join(" OR "))
    }
}

/// The channel id in `column` (SQL) in the model's `-100...` form: a bare id gets the
/// prefix, a negative one stays; NULL when a text id is not a number. The one place the
/// legacy tables' channel ids are normalised (messages and registry, both shapes); the same
/// rule as collapse::normalise_channel_id, and tests/legacy.rs checks the SQL against ids it
/// computes itself.
fn normalised_channel(column: &str, is_text: bool) -> String {
    let bare = "1000000000000";
    if is_text {
        let c = format!("btrim({column})");
        format!(
            "CASE WHEN {c} ~ '^-[0-9]{{1,18}}$' THEN {c}::bigint \
             WHEN {c} ~ '^[1-9][0-9]{{0,11}}$' THEN -({bare} + {c}::bigint) \
             WHEN {c} ~ '^[0-9]{{13,18}}$' THEN {c}::bigint END"
        )
    } else {
        format!(
            "(CASE WHEN {column} > 0 AND {column} < {bare} THEN -({bare} + {column}) \
             ELSE {column} END)::bigint"
        )
    }
}

/// The normalised channel id (NULL when not a number) and the message id (NULL when not a
/// number), as SQL over `m`.
fn keys(shape: Shape) -> (String, String) {
    match shape {
        Shape::A => (
            normalised_channel("m.channel_id", true),
            "m.message_id::bigint".into(),
        ),
        Shape::B => (
            normalised_channel("m.channel_id", false),
            "CASE WHEN btrim(m.message_id) ~ '^[0-9]{1,18}$' THEN btrim(m.message_id)::bigint END"
                .into(),
        ),
    }
}

/// Every legacy row through the common projection, ordered so the copies of a message are
/// adjacent; rows of channels at or below their checkpoint are left out. Parameters:
/// `$1 bigint[]` checkpointed channels, `$2 bigint[]` their last message ids.
pub fn rows_query(schema: &str, shape: Shape, columns: &Columns) -> String {
    let (channel, message) = keys(shape);
    let id = text(columns, &["id"]);
    format!(
        "SELECT r.* FROM (SELECT {channel} AS channel_id, {message} AS message_id, \
         {status} AS status, {deleted} AS deleted, {text} AS text, {caption} AS caption, \
         {media} AS media_type, {telegram_date} AS telegram_date, {created} AS created_at, \
         {updated} AS updated_at, {received} AS received_at, {id} AS legacy_id, \
         to_jsonb(m) AS row FROM {table} m) r \
         LEFT JOIN unnest($1::bigint[], $2::bigint[]) AS ck(channel_id, last) USING (channel_id) \
         WHERE r.channel_id IS NOT NULL AND r.message_id IS NOT NULL \
         AND (ck.last IS NULL OR r.message_id > ck.last) \
         ORDER BY r.channel_id, r.message_id",
        status = text(columns, &["status"]),
        deleted = deleted(columns),
        text = text(columns, &["text", "message_text", "content"]),
        caption = text(columns, &["caption"]),
        media = text(columns, &["media_type"]),
        telegram_date = timestamp(columns, &["telegram_date", "date", "message_date"]),
        created = timestamp(columns, &["created_at"]),
        updated = timestamp(columns, &["updated_at", "edited_at"]),
        received = timestamp(columns, &["received_at"]),
        table = table(schema, "messages"),
    )
}

/// The rows the import cannot place (a channel or message id that is not a number): count
/// and a few examples of the offending ids.
pub fn unplaceable_query(schema: &str, shape: Shape) -> String {
    let (channel, message) = keys(shape);
    let table = table(schema, "messages");
    let bad = format!("({channel}) IS NULL OR ({message}) IS NULL");
    format!(
        "SELECT (SELECT count(*) FROM {table} m WHERE {bad}), \
         coalesce((SELECT array_agg(e.key) FROM (SELECT DISTINCT m.channel_id::text || '/' || \
         m.message_id::text AS key FROM {table} m WHERE {bad} ORDER BY 1 LIMIT 5) e), '{{}}')"
    )
}

pub fn table(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// The legacy channel registry through a common projection: normalised id, title,
/// username, active. `None` when the legacy database has no channels table.
pub fn channels_query(schema: &str, columns: &Columns) -> Option<String> {
    let id_column = column(columns, &["channel_id", "telegram_id"])?;
    let id = normalised_channel(
        &format!("m.{}", quote_ident(id_column)),
        !is_integer(&columns[id_column]),
    );
    let active = match column(columns, &["is_active", "enabled", "active"]) {
        Some(name) => format!("coalesce(m.{}, true)", quote_ident(name)),
        None => "true".into(),
    };
    Some(format!(
        "SELECT {id} AS channel_id, {title} AS title, {username} AS username, {active} AS active \
         FROM {table} m ORDER BY 1",
        title = text(columns, &["title", "label", "name"]),
        username = text(columns, &["username"]),
        table = table(schema, "channels"),
    ))
}

/// The columns of `schema.name` (empty when there is no such table). `$1` schema, `$2` table.
/// A user-defined type (an enum) is named `USER-DEFINED:"schema"."type"`, so a value
/// written into it can be cast.
pub const COLUMNS_QUERY: &str = "SELECT column_name::text, CASE WHEN data_type = 'USER-DEFINED' \
     THEN 'USER-DEFINED:' || quote_ident(udt_schema) || '.' || quote_ident(udt_name) \
     ELSE data_type::text END FROM information_schema.columns \
     WHERE table_schema = $1 AND table_name = $2";

/// True when the current role could change the legacy messages table. `$1` the table.
pub const WRITABLE_QUERY: &str = "SELECT r.rolsuper \
     OR has_table_privilege(current_user, $1, 'INSERT') \
     OR has_table_privilege(current_user, $1, 'UPDATE') \
     OR has_table_privilege(current_user, $1, 'DELETE') \
     OR has_table_privilege(current_user, $1, 'TRUNCATE') \
     FROM pg_roles r WHERE r.rolname = current_user";

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(pairs: &[(&str, &str)]) -> Columns {
        pairs
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn shapes_are_told_apart_by_the_key_types() {
        let a = columns(&[("channel_id", "text"), ("message_id", "bigint")]);
        let b = columns(&[("channel_id", "bigint"), ("message_id", "text")]);
        assert_eq!(detect("public", &a).unwrap(), Shape::A);
        assert_eq!(detect("public", &b).unwrap(), Shape::B);
        let neither = columns(&[("channel_id", "bigint"), ("message_id", "bigint")]);
        let error = detect("public", &neither).unwrap_err().to_string();
        assert!(
            error.contains("channel_id bigint and message_id bigint"),
            "{error}"
        );
        let error = detect("old", &Columns::new()).unwrap_err().to_string();
        assert!(error.contains("no table old.messages"), "{error}");
        let error = detect("public", &columns(&[("id", "uuid")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("found: id"), "{error}");
    }

    #[test]
    fn missing_optional_columns_read_as_null() {
        let b = columns(&[
            ("channel_id", "bigint"),
            ("message_id", "text"),
            ("date", "integer"),
        ]);
        let query = rows_query("public", Shape::B, &b);
        assert!(query.contains("NULL::text AS status"), "{query}");
        assert!(
            query.contains("to_timestamp(m.\"date\") AS telegram_date"),
            "{query}"
        );
        assert!(query.contains("false AS deleted"), "{query}");
    }
}
