//! `tg-gateway export-legacy`: the way back after a cutover. Every message this stack
//! stored above the import's per-channel checkpoints (what the new gateway ingested since;
//! all of a channel the import never saw) is written into the legacy database in its own
//! shape, so the old service can take over again without losing them. Idempotent: a
//! message the legacy table already has (in either channel id form) is left alone.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::shape::{Columns, Shape, table};
use super::{Legacy, Options};
use crate::config::Config;
use crate::sql::quote_ident;

/// What an export wrote, per channel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    pub shape: String,
    /// Messages above the checkpoints, per channel.
    pub candidates: BTreeMap<i64, u64>,
    /// Of those, written into the legacy table (the rest were there).
    pub written: u64,
}

impl ExportSummary {
    pub fn human(&self) -> String {
        let total: u64 = self.candidates.values().sum();
        format!(
            "export-legacy: shape {}; {} messages stored since the import in {} channels; \
             {} written into the legacy database, {} were there\n",
            self.shape,
            total,
            self.candidates.len(),
            self.written,
            total - self.written
        )
    }
}

/// A message stored by this stack, as the export writes it.
struct Stored {
    channel_id: i64,
    message_id: i64,
    posted_at: DateTime<Utc>,
    text: String,
    media_type: Option<String>,
    received_at: DateTime<Utc>,
    edit_date: Option<DateTime<Utc>>,
    deleted: bool,
    sender_id: Option<i64>,
}

/// `value` as the column `name` holds it: epoch seconds for a date in an integer column, a
/// cast through text for an enum (`USER-DEFINED:type`) or any other type.
fn as_column(columns: &Columns, name: &str, value: &str, is_date: bool) -> String {
    let kind = columns[name].as_str();
    match kind.strip_prefix("USER-DEFINED:") {
        Some(type_name) => format!("({value})::text::{type_name}"),
        None if is_date && super::shape::is_integer(kind) => {
            format!("extract(epoch FROM {value})::bigint")
        }
        None => format!("({value})::{kind}"),
    }
}

/// The INSERT into the legacy table from unnest'ed arrays: `$1` channel (model form),
/// `$2` message, `$3` text, `$4` media type, `$5` Telegram date, `$6` received, `$7` edited,
/// `$8` deleted, `$9` metadata. Only columns the table has are written, each converted to
/// its type. The channel id is written in a form the legacy table already uses for that
/// channel (the `-100...` form when it has both, which sorts first; the model's form for a
/// channel it never had); a message already there under either form is skipped.
fn insert_query(schema: &str, shape: Shape, columns: &Columns) -> String {
    let messages = table(schema, "messages");
    let bare = "(-x.channel - 1000000000000)";
    let (forms, message, same_message) = match shape {
        Shape::A => (
            format!("(x.channel::text, {bare}::text)"),
            "x.message",
            "m.message_id = x.message",
        ),
        Shape::B => (
            format!("(x.channel, {bare})"),
            "x.message::text",
            "m.message_id = x.message::text",
        ),
    };
    let model_form = match shape {
        Shape::A => "x.channel::text",
        Shape::B => "x.channel",
    };
    let channel = format!(
        "coalesce((SELECT e.channel_id FROM {messages} e WHERE e.channel_id IN {forms} \
         ORDER BY e.channel_id LIMIT 1), {model_form})"
    );
    let mut targets = vec!["channel_id".to_string(), "message_id".to_string()];
    let mut values = vec![channel, message.to_string()];
    let mut add = |names: &[&str], value: &str, is_date: bool| {
        if let Some(name) = super::shape::column(columns, names) {
            targets.push(quote_ident(name));
            values.push(as_column(columns, name, value, is_date));
        }
    };
    add(&["text", "message_text", "content"], "x.text", false);
    add(&["media_type"], "x.media", false);
    add(&["telegram_date", "date", "message_date"], "x.posted", true);
    add(&["received_at"], "x.received", true);
    add(&["created_at"], "x.received", true);
    add(&["updated_at", "edited_at"], "x.edited", true);
    add(
        &["status"],
        "CASE WHEN x.deleted THEN 'deleted' ELSE 'published' END",
        false,
    );
    add(
        &["deleted_at"],
        "CASE WHEN x.deleted THEN coalesce(x.edited, x.received) END",
        true,
    );
    add(&["is_deleted"], "x.deleted", false);
    add(&["source"], "'telegram'", false);
    add(&["metadata"], "x.meta", false);
    format!(
        "WITH written AS (INSERT INTO {messages} ({targets}) SELECT {values} \
         FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], \
         $6::timestamptz[], $7::timestamptz[], $8::boolean[], $9::jsonb[]) \
         AS x(channel, message, text, media, posted, received, edited, deleted, meta) \
         WHERE NOT EXISTS (SELECT 1 FROM {messages} m WHERE m.channel_id IN {forms} AND {same_message}) \
         RETURNING 1) SELECT count(*) FROM written",
        targets = targets.join(", "),
        values = values.join(", "),
    )
}

/// Rows per INSERT into the legacy database.
const CHUNK: usize = 2000;

pub async fn export(config: &Config, options: &Options) -> Result<ExportSummary> {
    let rows = super::store(config)?
        .stored_since_legacy_import()
        .await
        .context("cannot read the stack's messages")?;
    let stored: Vec<Stored> = rows
        .iter()
        .map(|r| {
            Ok(Stored {
                channel_id: r.try_get(0)?,
                message_id: r.try_get(1)?,
                posted_at: r.try_get(2)?,
                text: r.try_get(3)?,
                media_type: r.try_get(4)?,
                received_at: r.try_get(5)?,
                edit_date: r.try_get(6)?,
                deleted: r.try_get(7)?,
                sender_id: r.try_get(8)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let legacy = Legacy::open_for_writing(config, options).await?;
    let query = insert_query(&legacy.schema, legacy.shape, &legacy.columns);
    let mut summary = ExportSummary {
        shape: legacy.shape.name().into(),
        ..Default::default()
    };
    for m in &stored {
        *summary.candidates.entry(m.channel_id).or_default() += 1;
    }
    for chunk in stored.chunks(CHUNK) {
        let column = |f: fn(&Stored) -> i64| chunk.iter().map(f).collect::<Vec<i64>>();
        let channels = column(|m| m.channel_id);
        let messages = column(|m| m.message_id);
        let texts: Vec<&str> = chunk.iter().map(|m| m.text.as_str()).collect();
        let media: Vec<Option<&str>> = chunk.iter().map(|m| m.media_type.as_deref()).collect();
        let posted: Vec<DateTime<Utc>> = chunk.iter().map(|m| m.posted_at).collect();
        let received: Vec<DateTime<Utc>> = chunk.iter().map(|m| m.received_at).collect();
        let edited: Vec<Option<DateTime<Utc>>> = chunk.iter().map(|m| m.edit_date).collect();
        let deleted: Vec<bool> = chunk.iter().map(|m| m.deleted).collect();
        let meta: Vec<serde_json::Value> = chunk
            .iter()
            .map(|m| json!({ "exported_from": "tgstack", "sender_id": m.sender_id }))
            .collect();
        let written: i64 = legacy
            .client
            .query_one(
                &query,
                &[
                    &channels, &messages, &texts, &media, &posted, &received, &edited, &deleted,
                    &meta,
                ],
            )
            .await
            .context("cannot write into the legacy database")?
            .try_get(0)?;
        summary.written += written as u64;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_columns_the_table_has_are_written_each_as_its_type() {
        let columns: Columns = [
            ("channel_id", "bigint"),
            ("message_id", "text"),
            ("text", "text"),
            ("date", "integer"),
            ("status", "USER-DEFINED:\"public\".\"msg_status\""),
            ("is_deleted", "boolean"),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
        let query = insert_query("public", Shape::B, &columns);
        assert!(
            query.contains(r#"(channel_id, message_id, "text", "date", "status", "is_deleted")"#),
            "{query}"
        );
        assert!(
            query.contains("extract(epoch FROM x.posted)::bigint"),
            "{query}"
        );
        assert!(
            query.contains(r#"::text::"public"."msg_status""#),
            "{query}"
        );
        assert!(query.contains("m.message_id = x.message::text"), "{query}");
    }
}
