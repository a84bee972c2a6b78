//! PostgreSQL storage through PgBouncer in transaction mode. Every statement is unnamed
//! (`query_typed`) or a simple query, because PgBouncer 1.18 routes named prepared
//! statements to whichever server connection is free. The one exception is COPY, which
//! tokio-postgres always prepares: it runs, and its statement is closed, inside the same
//! transaction, so it never outlives the server connection PgBouncer gave that transaction.
//!
//! A batch is one transaction: new messages are binary-COPYed into a temp table
//! (ON COMMIT DROP) and inserted with ON CONFLICT DO NOTHING; the rows actually inserted,
//! and every applied edit and delete, get an outbox row in the same transaction, so a
//! stored message is never left without its pending publish.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::pin_mut;
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::source::{IncomingMessage, SourceEvent};
use crate::sql;

/// An event waiting in (or just written to) the outbox.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub channel_id: i64,
    pub message_id: i64,
    pub event: String,
    pub payload: serde_json::Value,
    /// When the gateway received the event; `None` for rows read back from the table.
    pub received: Option<std::time::Instant>,
}

/// What one batch changed.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// New rows in outbox order (new messages, then edits and deletes in receipt order).
    pub outbox: Vec<OutboxRow>,
    /// Newly stored messages: (channel, posted_at).
    pub stored: Vec<(i64, DateTime<Utc>)>,
    pub edits: Vec<i64>,
    pub deletes: Vec<(i64, usize)>,
}

/// Per-batch statements, prepared once for the schema.
struct Statements {
    create_temp: String,
    copy_in: String,
    insert_new: String,
    edit: String,
    insert_edited: String,
    delete: String,
    unpublished_channels: String,
    unpublished: String,
    mark_published: String,
    last_message_id: String,
    outbox_depth: String,
    cache_rows: String,
    cache_window: String,
    legacy_create_temp: String,
    legacy_copy_in: String,
    legacy_analyze: String,
    legacy_insert: String,
    legacy_insert_quiet: String,
    legacy_refresh: String,
    legacy_checkpoint: String,
    legacy_checkpoints: String,
    legacy_verify_rows: String,
    legacy_since_import: String,
}

impl Statements {
    fn new(schema: &str) -> Self {
        let prepare = |file| sql::prepare(file, schema);
        Statements {
            create_temp: prepare(sql::CREATE_TEMP),
            copy_in: prepare(sql::COPY_IN),
            insert_new: prepare(sql::INSERT_NEW),
            edit: prepare(sql::EDIT),
            insert_edited: prepare(sql::INSERT_EDITED),
            delete: prepare(sql::DELETE),
            unpublished_channels: prepare(sql::UNPUBLISHED_CHANNELS),
            unpublished: prepare(sql::UNPUBLISHED),
            mark_published: prepare(sql::MARK_PUBLISHED),
            last_message_id: prepare(sql::LAST_MESSAGE_ID),
            outbox_depth: prepare(sql::OUTBOX_DEPTH),
            cache_rows: prepare(sql::CACHE_ROWS),
            cache_window: prepare(sql::CACHE_WINDOW),
            legacy_create_temp: prepare(sql::LEGACY_CREATE_TEMP),
            legacy_copy_in: prepare(sql::LEGACY_COPY_IN),
            legacy_analyze: prepare(sql::LEGACY_ANALYZE),
            legacy_insert: prepare(sql::LEGACY_INSERT),
            legacy_insert_quiet: prepare(sql::LEGACY_INSERT_QUIET),
            legacy_refresh: prepare(sql::LEGACY_REFRESH),
            legacy_checkpoint: prepare(sql::LEGACY_CHECKPOINT),
            legacy_checkpoints: prepare(sql::LEGACY_CHECKPOINTS),
            legacy_verify_rows: prepare(sql::LEGACY_VERIFY_ROWS),
            legacy_since_import: prepare(sql::LEGACY_SINCE_IMPORT),
        }
    }
}

/// How far one channel got in a batch of `import-legacy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyProgress {
    pub channel_id: i64,
    pub last_message_id: i64,
    pub rows_read: i64,
    pub messages: i64,
    pub duplicates_collapsed: i64,
}

/// What one batch of `import-legacy` stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegacyStored {
    /// New rows (messages already present are kept as they were).
    pub stored: i64,
    /// Outbox rows written for them (`--publish`).
    pub queued: i64,
    /// Messages an earlier import stored that took the values read now (`--refresh`).
    pub updated: i64,
}

/// How `import_legacy_batch` stores a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyWrite {
    /// New messages only.
    Insert,
    /// New messages, each with its outbox row.
    Publish,
    /// New messages, and the import's earlier rows updated to what was read now.
    Refresh,
}

/// The gateway's database.
pub struct Store {
    pool: Pool,
    sql: Statements,
}

/// The payload published for a new message or an edit: the message with its event name.
pub fn message_payload(event: &str, message: &IncomingMessage) -> serde_json::Value {
    let mut value = serde_json::to_value(message).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("event".into(), serde_json::Value::String(event.into()));
    }
    value
}

impl Store {
    /// A pool of at most `size` connections; nothing connects until first use.
    pub fn new(config: &tokio_postgres::Config, schema: &str, size: usize) -> Result<Self> {
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // Reuse without a round trip; a broken connection fails its next query,
                // which the caller retries on a fresh one.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .context("cannot build the database pool")?;
        Ok(Store {
            pool,
            sql: Statements::new(schema),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| anyhow::anyhow!("no database connection: {e}"))
    }

    /// The current rows of `keys` (channel, message id), for the read cache.
    pub async fn cache_rows(&self, keys: &[(i64, i64)]) -> Result<Vec<tokio_postgres::Row>> {
        let channels: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let messages: Vec<i64> = keys.iter().map(|k| k.1).collect();
        let client = self.client().await?;
        Ok(client
            .query_typed(
                &self.sql.cache_rows,
                &[(&channels, Type::INT8_ARRAY), (&messages, Type::INT8_ARRAY)],
            )
            .await?)
    }

    /// The newest `limit` rows of a channel, newest first, for the read cache's window.
    pub async fn cache_window(&self, channel: i64, limit: i64) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client().await?;
        Ok(client
            .query_typed(
                &self.sql.cache_window,
                &[(&channel, Type::INT8), (&limit, Type::INT8)],
            )
            .await?)
    }

    /// `SELECT 1` through the pool.
    pub async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Writes one batch in one transaction. New messages must be unique by
    /// (channel, message, posted_at) within the batch.
    pub async fn write_batch(&self, events: &[crate::source::Received]) -> Result<BatchOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut outcome = BatchOutcome::default();

        let news: Vec<(usize, &IncomingMessage)> = events
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.event {
                SourceEvent::New(m) => Some((i, m)),
                _ => None,
            })
            .collect();
        if !news.is_empty() {
            tx.batch_execute(&self.sql.create_temp).await?;
            let sink = tx.copy_in(&self.sql.copy_in).await?;
            let types = [
                Type::INT4,
                Type::INT8,
                Type::INT8,
                Type::TIMESTAMPTZ,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::JSONB,
                Type::TIMESTAMPTZ,
                Type::JSONB,
            ];
            let writer = BinaryCopyInWriter::new(sink, &types);
            pin_mut!(writer);
            // Each payload is built once: written with the row, kept for the outbox row (the
            // database does not send it back).
            let payloads: Vec<serde_json::Value> = news
                .iter()
                .map(|(_, m)| message_payload("new", m))
                .collect();
            for (seq, ((_, m), payload)) in news.iter().zip(&payloads).enumerate() {
                let seq = i32::try_from(seq).unwrap_or(i32::MAX);
                let row: [&(dyn ToSql + Sync); 11] = [
                    &seq,
                    &m.channel_id,
                    &m.message_id,
                    &m.posted_at,
                    &m.text,
                    &m.sender_id,
                    &m.reply_to_message_id,
                    &m.media_type,
                    &m.raw,
                    &m.edit_date,
                    payload,
                ];
                writer.as_mut().write(&row).await?;
            }
            writer.finish().await?;
            let rows = tx.query_typed(&self.sql.insert_new, &[]).await?;
            // Payloads and receipt times (for end-to-end latency) by key.
            let mut by_key: std::collections::HashMap<(i64, i64), (serde_json::Value, Instant)> =
                news.iter()
                    .zip(payloads)
                    .map(|((i, m), payload)| {
                        ((m.channel_id, m.message_id), (payload, events[*i].at))
                    })
                    .collect();
            for row in rows {
                let channel_id: i64 = row.try_get(1)?;
                let message_id: i64 = row.try_get(2)?;
                let posted_at: DateTime<Utc> = row.try_get(3)?;
                outcome.stored.push((channel_id, posted_at));
                let Some((payload, at)) = by_key.remove(&(channel_id, message_id)) else {
                    anyhow::bail!(
                        "the database stored message {message_id} of channel {channel_id}, which is not in the batch"
                    );
                };
                outcome.outbox.push(OutboxRow {
                    id: row.try_get(0)?,
                    channel_id,
                    message_id,
                    event: "new".into(),
                    payload,
                    received: Some(at),
                });
            }
        }

        for received in events {
            match &received.event {
                SourceEvent::New(_) => {}
                SourceEvent::Edit(m) => {
                    // Without an edit date, the post date stands in: applying the same
                    // edit again is then a no-op instead of a second edit event.
                    let edit_date = m.edit_date.unwrap_or(m.posted_at);
                    let mut edited = m.clone();
                    edited.edit_date = Some(edit_date);
                    let payload = message_payload("edit", &edited);
                    let params: [(&(dyn ToSql + Sync), Type); 7] = [
                        (&m.channel_id, Type::INT8),
                        (&m.message_id, Type::INT8),
                        (&edit_date, Type::TIMESTAMPTZ),
                        (&m.text, Type::TEXT),
                        (&m.raw, Type::JSONB),
                        (&m.media_type, Type::TEXT),
                        (&payload, Type::JSONB),
                    ];
                    let mut rows = tx.query_typed(&self.sql.edit, &params).await?;
                    if rows.is_empty() {
                        let params: [(&(dyn ToSql + Sync), Type); 10] = [
                            (&m.channel_id, Type::INT8),
                            (&m.message_id, Type::INT8),
                            (&edit_date, Type::TIMESTAMPTZ),
                            (&m.text, Type::TEXT),
                            (&m.raw, Type::JSONB),
                            (&m.media_type, Type::TEXT),
                            (&payload, Type::JSONB),
                            (&m.posted_at, Type::TIMESTAMPTZ),
                            (&m.sender_id, Type::INT8),
                            (&m.reply_to_message_id, Type::INT8),
                        ];
                        rows = tx.query_typed(&self.sql.insert_edited, &params).await?;
                    }
                    for row in rows {
                        outcome.edits.push(m.channel_id);
                        outcome.outbox.push(OutboxRow {
                            id: row.try_get(0)?,
                            channel_id: m.channel_id,
                            message_id: m.message_id,
                            event: "edit".into(),
                            payload: payload.clone(),
                            received: Some(received.at),
                        });
                    }
                }
                SourceEvent::Delete {
                    channel_id,
                    message_ids,
                } => {
                    let params: [(&(dyn ToSql + Sync), Type); 2] =
                        [(channel_id, Type::INT8), (message_ids, Type::INT8_ARRAY)];
                    let rows = tx.query_typed(&self.sql.delete, &params).await?;
                    outcome.deletes.push((*channel_id, rows.len()));
                    for row in rows {
                        outcome.outbox.push(OutboxRow {
                            id: row.try_get(0)?,
                            channel_id: *channel_id,
                            message_id: row.try_get(1)?,
                            event: "delete".into(),
                            payload: row.try_get(2)?,
                            received: Some(received.at),
                        });
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Channels with unpublished outbox rows.
    pub async fn unpublished_channels(&self) -> Result<Vec<i64>> {
        let client = self.client().await?;
        let rows = client
            .query_typed(&self.sql.unpublished_channels, &[])
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(Into::into))
            .collect()
    }

    /// The oldest unpublished rows of one channel, in id order.
    pub async fn unpublished(&self, channel_id: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let client = self.client().await?;
        let rows = client
            .query_typed(
                &self.sql.unpublished,
                &[(&channel_id, Type::INT8), (&limit, Type::INT8)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxRow {
                    id: row.try_get(0)?,
                    channel_id: row.try_get(1)?,
                    message_id: row.try_get(2)?,
                    event: row.try_get(3)?,
                    payload: row.try_get(4)?,
                    received: None,
                })
            })
            .collect()
    }

    pub async fn mark_published(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let ids = ids.to_vec();
        client
            .query_typed(&self.sql.mark_published, &[(&ids, Type::INT8_ARRAY)])
            .await?;
        Ok(())
    }

    /// Where catch-up of a channel starts: its highest stored message id, 0 when none.
    pub async fn last_message_id(&self, channel_id: i64) -> Result<i64> {
        let client = self.client().await?;
        let row = client
            .query_typed_one(&self.sql.last_message_id, &[(&channel_id, Type::INT8)])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Outbox rows not yet confirmed by the broker.
    /// One batch of collapsed legacy messages and the progress of each channel in it, in
    /// one transaction: a run killed anywhere resumes from the last committed checkpoint
    /// with the same rows. With `publish`, every stored message that is not deleted also
    /// gets its outbox row (the live gateway publishes them).
    pub async fn import_legacy_batch(
        &self,
        rows: &[crate::legacy::Imported],
        progress: &[LegacyProgress],
        mode: LegacyWrite,
    ) -> Result<LegacyStored> {
        let publish = mode == LegacyWrite::Publish;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut outcome = LegacyStored::default();
        if !rows.is_empty() {
            tx.batch_execute(&self.sql.legacy_create_temp).await?;
            let sink = tx.copy_in(&self.sql.legacy_copy_in).await?;
            let types = [
                Type::INT8,
                Type::INT8,
                Type::TIMESTAMPTZ,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::JSONB,
                Type::TIMESTAMPTZ,
                Type::BOOL,
                Type::TIMESTAMPTZ,
                Type::JSONB,
            ];
            let writer = BinaryCopyInWriter::new(sink, &types);
            pin_mut!(writer);
            for m in rows {
                let payload = (publish && !m.deleted)
                    .then(|| message_payload("new", &crate::legacy::incoming(m)));
                let row: [&(dyn ToSql + Sync); 12] = [
                    &m.channel_id,
                    &m.message_id,
                    &m.posted_at,
                    &m.text,
                    &m.sender_id,
                    &m.reply_to_message_id,
                    &m.media_type,
                    &m.raw,
                    &m.edit_date,
                    &m.deleted,
                    &m.received_at,
                    &payload,
                ];
                writer.as_mut().write(&row).await?;
            }
            writer.finish().await?;
            // Only the publishing insert joins its rows back to the batch (for payloads):
            // it needs the batch's statistics, the plain one needs neither.
            let insert = match mode {
                LegacyWrite::Publish => {
                    tx.batch_execute(&self.sql.legacy_analyze).await?;
                    &self.sql.legacy_insert
                }
                LegacyWrite::Insert => &self.sql.legacy_insert_quiet,
                LegacyWrite::Refresh => &self.sql.legacy_refresh,
            };
            let counts = tx.query_typed_one(insert, &[]).await?;
            let second: i64 = counts.try_get(1)?;
            outcome = LegacyStored {
                stored: counts.try_get(0)?,
                queued: if publish { second } else { 0 },
                updated: if mode == LegacyWrite::Refresh {
                    second
                } else {
                    0
                },
            };
        }
        let column = |f: fn(&LegacyProgress) -> i64| progress.iter().map(f).collect::<Vec<i64>>();
        let (channels, last, read, messages, collapsed) = (
            column(|p| p.channel_id),
            column(|p| p.last_message_id),
            column(|p| p.rows_read),
            column(|p| p.messages),
            column(|p| p.duplicates_collapsed),
        );
        tx.query_typed(
            &self.sql.legacy_checkpoint,
            &[
                (&channels, Type::INT8_ARRAY),
                (&last, Type::INT8_ARRAY),
                (&read, Type::INT8_ARRAY),
                (&messages, Type::INT8_ARRAY),
                (&collapsed, Type::INT8_ARRAY),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The messages stored above the `import-legacy` checkpoints (for `export-legacy`).
    pub async fn stored_since_legacy_import(&self) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client().await?;
        Ok(client
            .query_typed(&self.sql.legacy_since_import, &[])
            .await?)
    }

    /// Every channel's `import-legacy` checkpoint: (channel, last message id imported).
    pub async fn legacy_checkpoints(&self) -> Result<Vec<(i64, i64)>> {
        let client = self.client().await?;
        let rows = client
            .query_typed(&self.sql.legacy_checkpoints, &[])
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The stored messages of `channels` in (channel, message) order, `chunk` rows at a
    /// time, handed to `each` (for `import-legacy --verify`). One transaction: the portal
    /// and its statement live and die inside it, as PgBouncer's transaction mode requires.
    pub async fn each_stored_message(
        &self,
        channels: &[i64],
        chunk: i32,
        mut each: impl FnMut(&tokio_postgres::Row) -> Result<()>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let statement = tx
            .prepare_typed(&self.sql.legacy_verify_rows, &[Type::INT8_ARRAY])
            .await?;
        let portal = tx.bind(&statement, &[&channels]).await?;
        loop {
            let rows = tx.query_portal(&portal, chunk).await?;
            for row in &rows {
                each(row)?;
            }
            if rows.len() < chunk as usize {
                break;
            }
        }
        drop(portal);
        drop(statement);
        tx.commit().await?;
        Ok(())
    }

    pub async fn outbox_depth(&self) -> Result<i64> {
        let client = self.client().await?;
        let row = client.query_typed_one(&self.sql.outbox_depth, &[]).await?;
        Ok(row.try_get(0)?)
    }
}
