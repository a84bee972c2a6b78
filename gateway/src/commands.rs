//! `run`, `replay` and `migrate`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tgstack::model::PostgresVariant;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio_postgres::NoTls;
use tokio_postgres::types::Type;

use crate::config::{Config, GatewayConfig};
use crate::health::{self, Health};
use crate::metrics::{self, Process};
use crate::pipeline::{Options, Pipeline};
use crate::source::{EventSink, SourceEvent};
use crate::sql::{self, quote_ident};
use crate::store::Store;

/// What a live source (Telegram) gets from `run`.
pub struct SourceContext {
    pub config: GatewayConfig,
    /// Where the source sends what it sees.
    pub sink: EventSink,
    /// Catch-up starts at `store.last_message_id(channel)`.
    pub store: Arc<Store>,
    /// The source reports `health::TELEGRAM` here.
    pub health: Health,
    /// Turns true on SIGTERM/SIGINT: return soon after.
    pub shutdown: watch::Receiver<bool>,
}

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `tg-gateway run`: the pipeline, the HTTP listener, and `source` feeding them until a
/// termination signal (or the source ends).
pub async fn run<S, F>(config: &Config, source: S) -> Result<()>
where
    S: FnOnce(SourceContext) -> F,
    F: Future<Output = Result<()>> + Send + 'static,
{
    let gateway = config.gateway()?;
    let handle = metrics::install(Process::Gateway)?;
    let health = Health::new(&[
        health::POSTGRES,
        health::REDIS,
        health::RABBITMQ,
        health::TELEGRAM,
    ]);
    let (pipeline, sink) = Pipeline::start(&gateway, health.clone(), Options::default())?;
    let (stop, stopped) = watch::channel(false);
    let http = crate::http::serve(gateway.listen, health.clone(), handle, stopped.clone()).await?;
    tracing::info!("{} listening on {}", gateway.service, gateway.listen);
    let mut source_task = tokio::spawn(source(SourceContext {
        config: gateway.clone(),
        sink,
        store: pipeline.store.clone(),
        health: health.clone(),
        shutdown: stopped,
    }));
    let mut stopping = false;
    let source_result = tokio::select! {
        result = &mut source_task => result,
        _ = termination() => {
            stopping = true;
            tracing::info!("stopping: finishing stored batches");
            let _ = stop.send(true);
            // A source in the middle of a connection attempt does not see the stop
            // signal: it gets a moment, then it is cut off. What it sent is in the pipeline;
            // what it had not yet sent, the next start catches up on.
            match tokio::time::timeout(SOURCE_GRACE, &mut source_task).await {
                Ok(result) => result,
                Err(_) => {
                    source_task.abort();
                    tracing::info!("the source did not stop within {SOURCE_GRACE:?}: cut off");
                    Ok(Ok(()))
                }
            }
        }
    };
    let _ = stop.send(true);
    let left = pipeline.finish(STOP_DRAIN, std::future::pending()).await?;
    let _ = tokio::time::timeout(HTTP_GRACE, http).await;
    if left > 0 {
        tracing::info!("{left} events stay in the outbox for the next start");
    }
    match source_result {
        Ok(Ok(())) => Ok(()),
        // Asked to stop: a source failing on its way out is not the run's failure.
        Ok(Err(error)) if stopping => {
            tracing::warn!("the source ended with an error while stopping: {error:#}");
            Ok(())
        }
        Ok(Err(error)) => Err(error),
        Err(error) => Err(anyhow!("the source task failed: {error}")),
    }
}

/// How long a source may take to stop after SIGTERM before it is cut off.
const SOURCE_GRACE: Duration = Duration::from_secs(1);
/// How long stored rows may take to reach the broker after SIGTERM; the rest stays in the
/// outbox for the next start.
pub const STOP_DRAIN: Duration = Duration::from_millis(2500);
/// How long open HTTP requests may take to finish after SIGTERM.
const HTTP_GRACE: Duration = Duration::from_millis(500);

// Every grace of a stop, one after the other, fits the stop_timeout TG701 demands of a
// native unit (the rendered unit and compose stop script give 30 s and 20 s by default).
const _: () = {
    let graces = SOURCE_GRACE.as_millis()
        + STOP_DRAIN.as_millis()
        + crate::pipeline::PUBLISHER_GRACE.as_millis()
        + HTTP_GRACE.as_millis();
    assert!(graces < tgstack::model::native::MIN_GATEWAY_STOP_TIMEOUT.0 as u128);
};

/// What a replay did.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    pub events: u64,
    pub invalid_lines: Vec<usize>,
    /// Outbox rows still unpublished when the replay stopped (-1 when unknown).
    pub outbox_left: i64,
}

/// `tg-gateway replay FILE`: the file's events through the same pipeline as `run`.
pub async fn replay(
    config: &Config,
    file: &Path,
    drain_timeout: Duration,
    serve: bool,
) -> Result<ReplaySummary> {
    let gateway = config.gateway()?;
    let handle = metrics::install(Process::Gateway)?;
    let health = Health::new(&[health::POSTGRES, health::REDIS, health::RABBITMQ]);
    let (pipeline, sink) = Pipeline::start(&gateway, health.clone(), Options::default())?;
    let (stop, stopped) = watch::channel(false);
    let http = if serve {
        Some(crate::http::serve(gateway.listen, health.clone(), handle, stopped).await?)
    } else {
        None
    };
    let mut reading = Box::pin(feed_file(file, sink));
    let finished_reading = tokio::select! {
        result = &mut reading => Some(result?),
        _ = termination() => {
            tracing::info!("stopping: finishing what was read");
            None
        }
    };
    // Reading stops here: the file's sink closes, so the pipeline stores what it holds.
    drop(reading);
    let (mut summary, left) = match finished_reading {
        // The whole file was read: wait for the outbox up to the drain timeout, or until
        // a termination signal.
        Some(summary) => {
            let left = pipeline.finish(drain_timeout, termination()).await?;
            (summary, left)
        }
        None => {
            let drain = drain_timeout.min(STOP_DRAIN);
            let left = pipeline.finish(drain, std::future::pending()).await?;
            (ReplaySummary::default(), left)
        }
    };
    summary.outbox_left = left;
    let _ = stop.send(true);
    if let Some(http) = http {
        let _ = tokio::time::timeout(HTTP_GRACE, http).await;
    }
    Ok(summary)
}

/// Sends every event of a JSON-lines file; bad lines are reported by number and skipped.
pub async fn feed_file(file: &Path, sink: EventSink) -> Result<ReplaySummary> {
    let handle = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let mut lines = tokio::io::BufReader::new(handle).lines();
    let mut summary = ReplaySummary::default();
    let mut number = 0usize;
    while let Some(line) = lines
        .next_line()
        .await
        .with_context(|| format!("cannot read {}", file.display()))?
    {
        number += 1;
        match SourceEvent::from_json_line(&line) {
            None => {}
            Some(Ok(event)) => {
                sink.send(event).await?;
                summary.events += 1;
            }
            Some(Err(error)) => {
                tracing::warn!("{}:{number}: not an event: {error}", file.display());
                summary.invalid_lines.push(number);
            }
        }
    }
    Ok(summary)
}

/// One applied migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: String,
    /// False when the version was already recorded (the file was re-applied anyway:
    /// every file is idempotent, and re-applying picks up changed functions and grants).
    pub new: bool,
}

/// `tg-gateway migrate`: the rendered SQL, applied directly to PostgreSQL as its
/// superuser (PgBouncer's transaction pooling is no place for DDL).
pub async fn migrate(config: &Config, variant: Option<PostgresVariant>) -> Result<Vec<Applied>> {
    let database_service = config.gateway_database_service()?;
    let (target, model_variant) = config.migration_target(&database_service)?;
    let variant = variant.unwrap_or(model_variant);
    let files = tgstack::render::sql::migration(config.stack(), &target.postgres_service, variant)
        .map_err(|e| anyhow!("cannot render the migration: {e}"))?;

    // The database itself: created when missing (a fresh server has only `postgres`).
    let mut admin = target.config.clone();
    admin.dbname("postgres");
    let (client, connection) = admin
        .connect(NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", target.endpoint))?;
    let connection = tokio::spawn(connection);
    let exists = client
        .query_typed(
            &sql::prepare(sql::DATABASE_EXISTS, &target.schema),
            &[(&target.database, Type::TEXT)],
        )
        .await?;
    if exists.is_empty() {
        client
            .batch_execute(&format!(
                "CREATE DATABASE {}",
                quote_ident(&target.database)
            ))
            .await
            .with_context(|| format!("cannot create database {}", target.database))?;
    }
    drop(client);
    let _ = connection.await;

    let (client, connection) = target
        .config
        .connect(NoTls)
        .await
        .with_context(|| format!("cannot connect to database {}", target.database))?;
    let connection = tokio::spawn(connection);
    let ledger = format!("{}.schema_migrations", quote_ident(&target.schema));
    let recorded: Vec<String> = match client
        .query_typed_one(
            &sql::prepare(sql::RELATION_EXISTS, &target.schema),
            &[(&ledger, Type::TEXT)],
        )
        .await?
        .try_get::<_, bool>(0)?
    {
        true => client
            .query_typed(&sql::prepare(sql::APPLIED_MIGRATIONS, &target.schema), &[])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?,
        false => Vec::new(),
    };
    let mut applied = Vec::new();
    for (name, sql) in files {
        let version = name.trim_end_matches(".sql").to_string();
        client
            .batch_execute(&sql)
            .await
            .with_context(|| format!("migration {name} failed"))?;
        applied.push(Applied {
            new: !recorded.contains(&version),
            version,
        });
    }
    drop(client);
    let _ = connection.await;
    Ok(applied)
}
