//! `tg-gateway import-legacy`: the message history of the database this stack replaces,
//! moved into the new one. The legacy database is only read (one read-only, repeatable-read
//! transaction; a role that could write there is refused unless allowed); rows are read in
//! (channel, message) order, so the copies of one Telegram message arrive together and are
//! collapsed (`collapse`) before they are stored through the same COPY + ON CONFLICT path
//! as the pipeline's, with a per-channel checkpoint in the same transaction.

pub mod collapse;
pub mod export;
pub mod report;
pub mod shape;

use std::collections::{BTreeMap, VecDeque};

use anyhow::{Context, Result, anyhow, bail};
use tokio_postgres::{IsolationLevel, NoTls, Portal, Row, Statement, Transaction};

pub use collapse::{Imported, LegacyRow};
use shape::{Columns, Shape};

use crate::config::{Config, Secret};
use crate::source::IncomingMessage;
use crate::store::{LegacyProgress, LegacyWrite, Store};

/// Where the legacy database's URL comes from: never the command line itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// An environment variable.
    Env(String),
    /// A secret of the model (its environment variable).
    Secret(String),
}

impl UrlSource {
    /// `env:NAME` or `secret:ID`. Anything that looks like a URL or a connection string is
    /// refused without being repeated.
    pub fn parse(text: &str) -> Result<UrlSource, String> {
        if let Some(name) = text.strip_prefix("env:").filter(|n| is_name(n)) {
            return Ok(UrlSource::Env(name.to_string()));
        }
        if let Some(id) = text.strip_prefix("secret:").filter(|n| is_name(n)) {
            return Ok(UrlSource::Secret(id.to_string()));
        }
        if text.contains("://") || text.contains('=') || text.contains('@') {
            return Err(
                "the legacy database URL never goes on the command line (it would be \
                        in the shell history and the process list): put it in an environment \
                        variable and pass `--from env:NAME`, or `--from secret:ID`"
                    .into(),
            );
        }
        Err("expected `env:NAME` or `secret:ID`".into())
    }

    fn describe(&self) -> String {
        match self {
            UrlSource::Env(name) => format!("environment variable {name}"),
            UrlSource::Secret(id) => format!("secret `{id}`"),
        }
    }

    fn resolve(&self, config: &Config) -> Result<Secret> {
        match self {
            UrlSource::Env(name) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
                _ => bail!("environment variable {name} (the legacy database URL) is not set"),
            },
            UrlSource::Secret(id) => {
                config.secret(&tgstack::model::SecretRef { secret: id.clone() })
            }
        }
    }
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What `import-legacy` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub from: UrlSource,
    /// The schema of the legacy tables.
    pub schema: String,
    /// Messages per stored batch (one transaction, one checkpoint).
    pub batch: usize,
    pub publish: bool,
    /// Read everything again (not only past the checkpoints) and update the messages an
    /// earlier run stored to what the legacy database holds now.
    pub refresh: bool,
    pub allow_writable_source: bool,
}

/// The payload a published imported message carries: the same shape as a live one.
pub fn incoming(m: &Imported) -> IncomingMessage {
    IncomingMessage {
        channel_id: m.channel_id,
        message_id: m.message_id,
        posted_at: m.posted_at,
        text: m.text.clone(),
        sender_id: m.sender_id,
        reply_to_message_id: m.reply_to_message_id,
        media_type: m.media_type.clone(),
        edit_date: m.edit_date,
        raw: m.raw.clone(),
    }
}

/// An open, read-only view of the legacy database.
pub struct Legacy {
    client: tokio_postgres::Client,
    pub schema: String,
    pub shape: Shape,
    columns: Columns,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Legacy {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// Rows read per round trip from the legacy database.
const FETCH: i32 = 2000;

impl Legacy {
    /// Connects, finds the shape and refuses a role that could write there (unless allowed).
    pub async fn open(config: &Config, options: &Options) -> Result<Legacy> {
        Self::connect(config, options, false).await
    }

    /// Connects for `export-legacy`, the one command that writes there.
    pub async fn open_for_writing(config: &Config, options: &Options) -> Result<Legacy> {
        Self::connect(config, options, true).await
    }

    async fn connect(config: &Config, options: &Options, write: bool) -> Result<Legacy> {
        let url = options.from.resolve(config)?;
        let pg: tokio_postgres::Config = url.expose().parse().map_err(|_| {
            anyhow!(
                "the legacy database URL in {} is not a PostgreSQL URL or connection string",
                options.from.describe()
            )
        })?;
        let (client, connection) = pg.connect(NoTls).await.map_err(|e| {
            anyhow!(
                "cannot connect to the legacy database (URL from {}): {e}",
                options.from.describe()
            )
        })?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let columns = table_columns(&client, &options.schema, "messages").await?;
        let shape = shape::detect(&options.schema, &columns)?;
        let table = shape::table(&options.schema, "messages");
        let writable: bool = client
            .query_one(shape::WRITABLE_QUERY, &[&table])
            .await?
            .try_get(0)?;
        if writable && !options.allow_writable_source && !write {
            bail!(
                "the legacy database's role can write to {table}: connect as a role that can \
                 only read it (GRANT SELECT), or pass --allow-writable-source (the import still \
                 reads in a read-only transaction)"
            );
        }
        // Naive `timestamp` columns are read (and written back) as UTC, whatever the legacy
        // server's TimeZone: the import's dates must not move with a server setting.
        client.batch_execute("SET TIME ZONE 'UTC'").await?;
        if !write {
            client
                .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                .await?;
        }
        Ok(Legacy {
            client,
            schema: options.schema.clone(),
            shape,
            columns,
            connection,
        })
    }

    /// A consistent, read-only pass over every message past `checkpoints`.
    pub async fn reader(&mut self, checkpoints: &[(i64, i64)]) -> Result<Reader<'_>> {
        let query = shape::rows_query(&self.schema, self.shape, &self.columns);
        let tx = self
            .client
            .build_transaction()
            .read_only(true)
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let channels: Vec<i64> = checkpoints.iter().map(|c| c.0).collect();
        let last: Vec<i64> = checkpoints.iter().map(|c| c.1).collect();
        let statement = tx.prepare(&query).await?;
        let portal = tx
            .bind(&statement, &[&channels, &last])
            .await
            .context("cannot read the legacy messages")?;
        Ok(Reader {
            tx,
            portal,
            _statement: statement,
            buffer: VecDeque::new(),
            exhausted: false,
            rows_read: 0,
        })
    }

    /// Rows the import cannot place (channel or message id not a number): count, examples.
    pub async fn unplaceable(&self) -> Result<(i64, Vec<String>)> {
        let row = self
            .client
            .query_one(&shape::unplaceable_query(&self.schema, self.shape), &[])
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The legacy channel registry (empty when there is none).
    pub async fn channels(&self) -> Result<Vec<report::LegacyChannel>> {
        let columns = table_columns(&self.client, &self.schema, "channels").await?;
        let Some(query) = shape::channels_query(&self.schema, &columns) else {
            return Ok(Vec::new());
        };
        let rows = self.client.query(&query, &[]).await?;
        rows.iter()
            .filter_map(|r| {
                let id: Option<i64> = r.get(0);
                id.map(|id| {
                    Ok(report::LegacyChannel {
                        id,
                        title: r.try_get(1)?,
                        username: r.try_get(2)?,
                        active: r.try_get(3)?,
                    })
                })
            })
            .collect()
    }
}

async fn table_columns(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
) -> Result<Columns> {
    let rows = client
        .query(shape::COLUMNS_QUERY, &[&schema, &table])
        .await
        .context("cannot read the legacy database's catalog")?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The legacy messages, one message (all its copies) at a time.
pub struct Reader<'a> {
    tx: Transaction<'a>,
    portal: Portal,
    /// Closing the statement would close the portal: it lives as long as the reader.
    _statement: Statement,
    buffer: VecDeque<LegacyRow>,
    exhausted: bool,
    pub rows_read: u64,
}

impl Reader<'_> {
    async fn fill(&mut self) -> Result<()> {
        if self.exhausted {
            return Ok(());
        }
        let rows = self.tx.query_portal(&self.portal, FETCH).await?;
        self.exhausted = rows.len() < FETCH as usize;
        self.rows_read += rows.len() as u64;
        for row in &rows {
            self.buffer.push_back(legacy_row(row)?);
        }
        Ok(())
    }

    /// The copies of the next message, or `None` at the end.
    pub async fn next_message(&mut self) -> Result<Option<Vec<LegacyRow>>> {
        if self.buffer.is_empty() {
            self.fill().await?;
        }
        let Some(first) = self.buffer.pop_front() else {
            return Ok(None);
        };
        let key = (first.channel_id, first.message_id);
        let mut copies = vec![first];
        loop {
            if self.buffer.is_empty() {
                self.fill().await?;
            }
            match self.buffer.front() {
                Some(next) if (next.channel_id, next.message_id) == key => {
                    copies.extend(self.buffer.pop_front());
                }
                _ => return Ok(Some(copies)),
            }
        }
    }
}

fn legacy_row(row: &Row) -> Result<LegacyRow> {
    Ok(LegacyRow {
        channel_id: row.try_get("channel_id")?,
        message_id: row.try_get("message_id")?,
        status: row.try_get("status")?,
        deleted: row.try_get("deleted")?,
        text: row.try_get("text")?,
        caption: row.try_get("caption")?,
        media_type: row.try_get("media_type")?,
        telegram_date: row.try_get("telegram_date")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        received_at: row.try_get("received_at")?,
        legacy_id: row.try_get("legacy_id")?,
        row: row.try_get("row")?,
    })
}

/// The store of the gateway service the import writes through (its database target).
pub fn store(config: &Config) -> Result<Store> {
    let gateway = config.gateway()?;
    Store::new(&gateway.database.config, &gateway.database.schema, 2)
}

/// `import-legacy`: everything past the checkpoints, in batches.
pub async fn import(config: &Config, options: &Options) -> Result<report::ImportSummary> {
    let store = store(config)?;
    let mut legacy = Legacy::open(config, options).await?;
    let (unplaceable, examples) = legacy.unplaceable().await?;
    let checkpoints = store.legacy_checkpoints().await?;
    let shape = legacy.shape;
    let mode = match (options.publish, options.refresh) {
        (true, _) => LegacyWrite::Publish,
        (false, true) => LegacyWrite::Refresh,
        (false, false) => LegacyWrite::Insert,
    };
    let mut summary = report::ImportSummary {
        shape: shape.name().to_string(),
        resumed_channels: checkpoints.len(),
        unplaceable_rows: unplaceable,
        unplaceable_examples: examples,
        ..Default::default()
    };
    // Reading and collapsing overlap with storing: one writer commits the batches in the
    // order they were read, while the next one is read.
    let (batches, writer) = Writer::start(store, mode);
    let from = if options.refresh {
        &[][..]
    } else {
        &checkpoints[..]
    };
    let mut reader = legacy.reader(from).await?;
    let mut batch: Vec<Imported> = Vec::new();
    let mut progress: BTreeMap<i64, LegacyProgress> = BTreeMap::new();
    while let Some(copies) = reader.next_message().await? {
        let (channel_id, message_id) = (copies[0].channel_id, copies[0].message_id);
        let entry = progress
            .entry(channel_id)
            .or_insert_with(|| LegacyProgress {
                channel_id,
                ..Default::default()
            });
        entry.last_message_id = message_id;
        entry.rows_read += copies.len() as i64;
        summary.rows_read += copies.len() as u64;
        match collapse::collapse(&copies, shape.name()) {
            Some(message) => {
                entry.messages += 1;
                entry.duplicates_collapsed += copies.len() as i64 - 1;
                summary.messages += 1;
                summary.duplicates_collapsed += copies.len() as u64 - 1;
                batch.push(message);
            }
            None => summary.undated.push((channel_id, message_id)),
        }
        if batch.len() >= options.batch {
            let full = (std::mem::take(&mut batch), std::mem::take(&mut progress));
            if batches.send(full).await.is_err() {
                break; // the writer failed: its error is returned below
            }
        }
    }
    drop(reader);
    if !progress.is_empty() {
        let _ = batches.send((batch, progress)).await;
    }
    drop(batches);
    let written = writer
        .await
        .map_err(|e| anyhow!("the writer task failed: {e}"))??;
    summary.stored = written.stored;
    summary.queued = written.queued;
    summary.updated = written.updated;
    summary.batches = written.batches;
    summary.channels = report::channels_against_model(config, &legacy.channels().await?);
    Ok(summary)
}

/// A batch of collapsed messages and each channel's progress in it.
type Batch = (Vec<Imported>, BTreeMap<i64, LegacyProgress>);

/// What the writer stored.
#[derive(Debug, Default)]
struct Written {
    stored: u64,
    queued: u64,
    updated: u64,
    batches: u64,
}

/// The task that stores the batches, one transaction each, in order.
struct Writer;

impl Writer {
    fn start(
        store: Store,
        mode: LegacyWrite,
    ) -> (
        tokio::sync::mpsc::Sender<Batch>,
        tokio::task::JoinHandle<Result<Written>>,
    ) {
        // One batch waiting while one is stored: the reader stays a batch ahead.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Batch>(1);
        let task = tokio::spawn(async move {
            let mut written = Written::default();
            while let Some((batch, progress)) = receiver.recv().await {
                let progress: Vec<LegacyProgress> = progress.into_values().collect();
                let stored = store.import_legacy_batch(&batch, &progress, mode).await?;
                written.stored += stored.stored as u64;
                written.queued += stored.queued as u64;
                written.updated += stored.updated as u64;
                written.batches += 1;
            }
            Ok(written)
        });
        (sender, task)
    }
}

/// `import-legacy --verify`: both sides compared message by message.
pub async fn verify(config: &Config, options: &Options) -> Result<report::Verification> {
    let store = store(config)?;
    let mut legacy = Legacy::open(config, options).await?;
    let shape = legacy.shape;
    let mut check = report::Verifier::default();
    {
        let mut reader = legacy.reader(&[]).await?;
        while let Some(copies) = reader.next_message().await? {
            match collapse::collapse(&copies, shape.name()) {
                Some(message) => check.legacy(&message),
                None => check.undated(copies[0].channel_id, copies[0].message_id),
            }
        }
    }
    let channels = check.channels();
    store
        .each_stored_message(&channels, FETCH, |row| {
            check.stored(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            );
            Ok(())
        })
        .await?;
    Ok(check.finish())
}

/// `import-legacy --channels`: the legacy registry against the model's channels.
pub async fn channels(config: &Config, options: &Options) -> Result<report::ChannelsReport> {
    let legacy = Legacy::open(config, options).await?;
    Ok(report::channels_against_model(
        config,
        &legacy.channels().await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_never_comes_from_the_command_line() {
        assert_eq!(
            UrlSource::parse("env:OLD_DB_URL"),
            Ok(UrlSource::Env("OLD_DB_URL".into()))
        );
        assert_eq!(
            UrlSource::parse("secret:legacy_db"),
            Ok(UrlSource::Secret("legacy_db".into()))
        );
        let refused = UrlSource::parse("postgres://u:hunter2@old/db").unwrap_err();
        assert!(
            refused.contains("never goes on the command line"),
            "{refused}"
        );
        assert!(!refused.contains("hunter2"));
        assert!(UrlSource::parse("host=old password=x").is_err());
        assert!(UrlSource::parse("env:").is_err());
    }
}
