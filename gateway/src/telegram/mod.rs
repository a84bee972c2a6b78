//! The Telegram source (MTProto through grammers) and `tg-gateway login`.
//!
//! Three paths feed the pipeline, all with the same [`mapping`]: the update stream (live
//! new / edited / deleted channel messages, with `catch_up` so the server replays what
//! happened while the session was offline), history catch-up at start from the last stored
//! message id of each channel, and a periodic re-read of recent history, because channel
//! update streams are known to drop messages. Re-sent messages are harmless: dedup and the
//! unique key keep each message once.
//!
//! Flood waits are honoured whatever their length ([`HonourFloodWaits`]); grammers' default
//! policy gives up on waits over 60 s.

pub mod login;
pub mod mapping;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use grammers_client::Client;
use grammers_mtsender::{
    ConnectionParams, InvocationError, RetryContext, RetryPolicy, RpcError, SenderPool,
    SenderPoolHandle, UpdatesConfiguration,
};
use grammers_session::Session as _;
use grammers_session::storages::SqliteSession;
use grammers_session::types::{PeerId, PeerRef};
use grammers_session::updates::UpdatesLike;
use tgstack::model::{Channel, Kind, native};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::commands::SourceContext;
use crate::config::{Config, GatewayConfig, Secret};
use crate::health;
use crate::session::{self, SessionLock};
use crate::source::{EventSink, SourceEvent};
use crate::store::Store;
use mapping::{ChannelFilter, map_message, map_update};

const FLOOD_WAIT_SECONDS: &str = crate::metrics::FLOOD_WAIT_SECONDS;

/// What the Telegram side needs from the model; no database, Redis or broker secret is
/// required, so `login` works before the rest of the stack exists.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub api_id: i32,
    pub api_hash: Secret,
    pub session_file: PathBuf,
    pub update_buffer: usize,
    pub reconcile_interval: Duration,
    pub channels: Vec<Channel>,
}

fn api_id(value: i64) -> Result<i32> {
    i32::try_from(value)
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| anyhow!("gateway.api_id {value} is not a Telegram api id (1..2^31)"))
}

impl TelegramSettings {
    /// From the model's `gateway` service of `config`.
    pub fn from_config(config: &Config) -> Result<Self> {
        let service = config.service();
        if service.kind != Kind::Gateway {
            bail!("service `{}` is not a gateway service", config.name);
        }
        let settings = service
            .gateway
            .as_ref()
            .ok_or_else(|| anyhow!("service `{}` has no [gateway] settings", config.name))?;
        let session_file = native::session_file(config.stack(), &config.name)
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("service `{}` has no [gateway] settings", config.name))?;
        Ok(TelegramSettings {
            api_id: api_id(settings.api_id)?,
            api_hash: config.secret(&settings.api_hash)?,
            session_file,
            update_buffer: usize::try_from(settings.update_buffer)
                .unwrap_or(10_000)
                .max(1),
            reconcile_interval: Duration::from_millis(settings.reconcile_interval.millis()),
            channels: config.stack().channels.clone(),
        })
    }

    /// From the resolved gateway configuration of `tg-gateway run`.
    pub fn from_gateway(gateway: &GatewayConfig) -> Result<Self> {
        Ok(TelegramSettings {
            api_id: api_id(gateway.api_id)?,
            api_hash: gateway.api_hash.clone(),
            session_file: gateway.session_file.clone(),
            update_buffer: gateway.update_buffer,
            reconcile_interval: gateway.reconcile_interval,
            channels: gateway.channels.clone(),
        })
    }
}

/// Retries flood waits for exactly as long as Telegram asks, however long that is, and
/// I/O errors a few times with backoff; everything else goes back to the caller.
pub struct HonourFloodWaits;

/// Consecutive I/O failures of one request retried before giving up.
const IO_RETRIES: u32 = 5;

impl HonourFloodWaits {
    /// The wait a failed request needs, if it should be retried.
    pub fn decide(error: &InvocationError, fail_count: u32) -> Option<Duration> {
        match error {
            // 420: FLOOD_WAIT_X, FLOOD_PREMIUM_WAIT_X, SLOWMODE_WAIT_X, with X seconds.
            InvocationError::Rpc(RpcError {
                code: 420,
                value: Some(seconds),
                ..
            }) => Some(Duration::from_secs(u64::from(*seconds))),
            InvocationError::Io(_) if fail_count <= IO_RETRIES => {
                Some(Duration::from_secs(1 << fail_count.min(5)))
            }
            _ => None,
        }
    }
}

impl RetryPolicy for HonourFloodWaits {
    fn should_retry(&self, ctx: &RetryContext) -> ControlFlow<(), Duration> {
        match Self::decide(&ctx.error, ctx.fail_count.get()) {
            Some(wait) => {
                if let InvocationError::Rpc(rpc) = &ctx.error {
                    tracing::warn!(error = %rpc, seconds = wait.as_secs(), "Telegram flood wait: sleeping as asked");
                    metrics::counter!(FLOOD_WAIT_SECONDS).increment(wait.as_secs());
                }
                ControlFlow::Continue(wait)
            }
            None => ControlFlow::Break(()),
        }
    }
}

/// A connected client on the session file. Hold the [`SessionLock`] while it lives.
pub struct Connection {
    pub client: Client,
    pub session: Arc<SqliteSession>,
    updates: Option<mpsc::Receiver<UpdatesLike>>,
    quit: SenderPoolHandle,
    runner: JoinHandle<()>,
    session_file: PathBuf,
}

impl Connection {
    /// Opens the session (created 0600 in a 0700 directory) and starts the sender pool.
    /// Nothing is sent to Telegram until the first request.
    pub async fn open(settings: &TelegramSettings, lock: &SessionLock) -> Result<Connection> {
        // The lock lives beside the session it guards.
        debug_assert_eq!(lock.path(), session::lock_path(&settings.session_file));
        let path = &settings.session_file;
        session::prepare_directory(path)?;
        session::secure_file(path)?;
        let sqlite = SqliteSession::open(path)
            .await
            .with_context(|| format!("cannot open the session file {}", path.display()))?;
        session::secure_file(path)?;
        let session = Arc::new(sqlite);
        let params = ConnectionParams {
            retry_policy: Box::new(HonourFloodWaits),
            // grammers drops updates beyond this buffer; the model sizes it.
            updates_channel_capacity: NonZeroUsize::new(settings.update_buffer)
                .unwrap_or(NonZeroUsize::MIN),
            ..ConnectionParams::default()
        };
        let pool = SenderPool::with_configuration(Arc::clone(&session), settings.api_id, params);
        let client = Client::new(pool.handle.clone());
        let quit = pool.handle.thin.clone();
        let runner = tokio::spawn(pool.runner.run());
        Ok(Connection {
            client,
            session,
            updates: Some(pool.updates),
            quit,
            runner,
            session_file: path.clone(),
        })
    }

    /// Disconnects and leaves the session files private.
    pub async fn close(self) -> Result<()> {
        self.quit.quit();
        let _ = self.runner.await;
        session::secure_file(&self.session_file)?;
        Ok(())
    }
}

/// Finds a usable reference (id + access hash) for every enabled channel: the session's
/// cache first, then the public username, then one walk over the dialogs.
async fn resolve_channels(
    connection: &Connection,
    channels: &[Channel],
) -> Result<HashMap<i64, PeerRef>> {
    let mut found = HashMap::new();
    let mut missing = Vec::new();
    for channel in channels.iter().filter(|c| c.enabled) {
        let Some(peer_id) = PeerId::from_bot_api_dialog_id(channel.id) else {
            tracing::warn!(channel = channel.id, "not a Telegram channel id; skipped");
            continue;
        };
        if let Some(reference) = connection.session.peer_ref(peer_id).await? {
            found.insert(channel.id, reference);
            continue;
        }
        if let Some(username) = &channel.username
            && let Some(peer) = connection.client.resolve_username(username).await?
            && let Some(reference) = peer.to_ref().await.map_err(|e| anyhow!("{e}"))?
        {
            found.insert(channel.id, reference);
            continue;
        }
        missing.push((channel.id, peer_id));
    }
    if !missing.is_empty() {
        // Walking the dialogs caches every joined peer in the session.
        let mut dialogs = connection.client.iter_dialogs();
        while dialogs.next().await?.is_some() {}
        for (channel_id, peer_id) in missing {
            match connection.session.peer_ref(peer_id).await? {
                Some(reference) => {
                    found.insert(channel_id, reference);
                }
                None => tracing::warn!(
                    channel = channel_id,
                    "channel not found among this account's dialogs: join it; its history cannot be read until then"
                ),
            }
        }
    }
    Ok(found)
}

/// Sends every message of `peer` newer than `after` (oldest first) and returns the newest
/// id seen. Also used for reconciliation: the pipeline drops what it already has.
async fn history_after(
    client: &Client,
    channel_id: i64,
    peer: PeerRef,
    after: i64,
    sink: &EventSink,
) -> Result<i64> {
    let offset = i32::try_from(after).map_err(|_| anyhow!("message id {after} out of range"))?;
    let mut messages = client.iter_messages(peer).offset_id(offset).reverse(true);
    let mut newest = after;
    while let Some(message) = messages.next().await? {
        newest = newest.max(i64::from(message.id()));
        if let Some(incoming) = map_message(&message.raw)
            && incoming.channel_id == channel_id
        {
            sink.send(SourceEvent::New(incoming)).await?;
        }
    }
    Ok(newest)
}

/// The newest message id of a channel, where history reading starts for a channel with
/// nothing stored yet (old history is a backfill job for `tg-gateway replay`).
async fn newest_id(client: &Client, peer: PeerRef) -> Result<i64> {
    let mut messages = client.iter_messages(peer).limit(1);
    Ok(messages
        .next()
        .await?
        .map_or(0, |message| i64::from(message.id())))
}

/// The catch-up start of a channel, retried until the database answers: without it the
/// source cannot know where history reading begins.
async fn checkpoint_with_retry(store: &Store, channel_id: i64) -> i64 {
    let mut wait = Duration::from_secs(1);
    loop {
        match store.last_message_id(channel_id).await {
            Ok(last) => return last,
            Err(error) => {
                tracing::warn!(channel = channel_id, error = %format!("{error:#}"), retry_in = ?wait, "cannot read the catch-up checkpoint");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Catch-up at start, then a re-read of everything since the previous pass every
/// `interval`: each message id above the start checkpoint is read from history at least
/// once, so a message the update stream dropped is still stored.
async fn catch_up_and_reconcile(
    client: Client,
    peers: HashMap<i64, PeerRef>,
    store: Arc<Store>,
    interval: Duration,
    sink: EventSink,
) -> Result<()> {
    let mut watermark: HashMap<i64, i64> = HashMap::new();
    for (&channel_id, &peer) in &peers {
        let last = checkpoint_with_retry(&store, channel_id).await;
        let start = if last > 0 {
            let newest = history_after(&client, channel_id, peer, last, &sink).await?;
            tracing::info!(
                channel = channel_id,
                from = last,
                to = newest,
                "caught up from history"
            );
            newest
        } else {
            newest_id(&client, peer).await?
        };
        watermark.insert(channel_id, start);
    }
    let mut ticker = tokio::time::interval(interval.max(Duration::from_secs(1)));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        for (&channel_id, &peer) in &peers {
            let from = watermark.get(&channel_id).copied().unwrap_or(0);
            match history_after(&client, channel_id, peer, from, &sink).await {
                Ok(newest) => {
                    watermark.insert(channel_id, newest);
                }
                Err(error) if error.is::<crate::source::PipelineClosed>() => return Ok(()),
                Err(error) => {
                    tracing::warn!(channel = channel_id, error = %error, "reconciliation failed; retried next interval");
                }
            }
        }
    }
}

/// How long the first request may wait for Telegram (connect and handshake included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A task aborted when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// The Telegram source of `tg-gateway run`: runs until shutdown or until the pipeline
/// closes. `lock` is the session lock `run` took before starting anything; it is held
/// until this returns.
pub async fn run(lock: SessionLock, context: SourceContext) -> Result<()> {
    let settings = TelegramSettings::from_gateway(&context.config)?;
    let health = context.health.clone();
    let outcome = run_source(&settings, &lock, context).await;
    health.set(health::TELEGRAM, false, "source stopped");
    drop(lock);
    outcome
}

async fn run_source(
    settings: &TelegramSettings,
    lock: &SessionLock,
    context: SourceContext,
) -> Result<()> {
    let SourceContext {
        sink,
        store,
        health,
        shutdown,
        ..
    } = context;
    // Down until Telegram answers: /health says so from the first attempt.
    health.set(health::TELEGRAM, false, "connecting to Telegram");
    let mut connection = Connection::open(settings, lock).await?;
    // grammers has no handshake timeout: a server that accepts and never answers would
    // hold the source (and its stop) forever.
    let authorized = tokio::time::timeout(CONNECT_TIMEOUT, connection.client.is_authorized())
        .await
        .map_err(|_| {
            let message = format!("Telegram did not answer within {CONNECT_TIMEOUT:?}");
            health.set(health::TELEGRAM, false, message.clone());
            anyhow!(message)
        })?;
    if !authorized? {
        connection.close().await?;
        bail!(
            "the session {} is not signed in: run `tg-gateway login` first",
            settings.session_file.display()
        );
    }
    health.set(health::TELEGRAM, true, "");
    let channels = ChannelFilter::from_model(&settings.channels);
    let updates = connection
        .updates
        .take()
        .ok_or_else(|| anyhow!("the update receiver was already taken"))?;
    // Start the stream before reading history, so nothing posted meanwhile is missed.
    let mut stream = connection
        .client
        .stream_updates(updates, UpdatesConfiguration { catch_up: true })
        .await
        .map_err(|e| anyhow!("cannot start the update stream: {e}"))?;
    let peers = resolve_channels(&connection, &settings.channels).await?;
    let history = {
        let (client, sink) = (connection.client.clone(), sink.clone());
        let interval = settings.reconcile_interval;
        // Aborted when this source ends or is cut off, so its sink never outlives it.
        AbortOnDrop(tokio::spawn(async move {
            if let Err(error) = catch_up_and_reconcile(client, peers, store, interval, sink).await
                && !error.is::<crate::source::PipelineClosed>()
            {
                tracing::error!(error = %format!("{error:#}"), "history catch-up stopped; live updates continue");
            }
        }))
    };

    let shutdown = stopped(shutdown);
    tokio::pin!(shutdown);
    let mut failures: u32 = 0;
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            next = stream.next_raw() => match next {
                Ok((update, _state, _peers)) => {
                    if failures > 0 {
                        failures = 0;
                        health.set(health::TELEGRAM, true, "");
                    }
                    if let Some(event) = map_update(&update, &channels)
                        && sink.send(event).await.is_err()
                    {
                        break Ok(());
                    }
                }
                Err(InvocationError::Dropped(reason)) => {
                    break Err(anyhow!("the Telegram connection closed: {reason}"));
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    health.set(health::TELEGRAM, false, error.to_string());
                    let wait = Duration::from_secs(1 << failures.min(6));
                    tracing::warn!(error = %error, retry_in = ?wait, "Telegram update stream failed");
                    tokio::time::sleep(wait).await;
                }
            },
        }
    };
    drop(history);
    if let Err(error) = stream.sync_update_state().await {
        tracing::warn!(error = %error, "cannot save the update state to the session");
    }
    drop(stream);
    connection.close().await?;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(code: i32, name: &str, value: Option<u32>) -> InvocationError {
        InvocationError::Rpc(RpcError {
            code,
            name: name.into(),
            value,
            caused_by: None,
        })
    }

    #[test]
    fn flood_waits_are_honoured_whatever_their_length() {
        let hour = rpc(420, "FLOOD_WAIT", Some(3600));
        assert_eq!(
            HonourFloodWaits::decide(&hour, 1),
            Some(Duration::from_secs(3600))
        );
        // Still honoured after many rounds: each wait is what Telegram asked for.
        assert_eq!(
            HonourFloodWaits::decide(&hour, 50),
            Some(Duration::from_secs(3600))
        );
        let slow = rpc(420, "SLOWMODE_WAIT", Some(5));
        assert_eq!(
            HonourFloodWaits::decide(&slow, 1),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn other_errors_go_back_to_the_caller_and_io_is_retried_a_few_times() {
        assert_eq!(
            HonourFloodWaits::decide(&rpc(400, "CHANNEL_INVALID", None), 1),
            None
        );
        let io = || InvocationError::Io(std::io::Error::other("reset"));
        assert_eq!(
            HonourFloodWaits::decide(&io(), 1),
            Some(Duration::from_secs(2))
        );
        assert_eq!(HonourFloodWaits::decide(&io(), IO_RETRIES + 1), None);
    }

    #[test]
    fn settings_need_only_the_api_hash_and_default_the_session_path() {
        let root = include_str!("../../../stack.toml");
        let model = tgstack::model::load_texts(vec![(PathBuf::from("stack.toml"), root.into())])
            .unwrap_or_else(|f| panic!("{:?}", f.iter().map(|f| &f.message).collect::<Vec<_>>()));
        // Only the Telegram secret is set: login must work before the rest of the stack.
        let lookup = Arc::new(|name: &str| {
            (name == "TG_TELEGRAM_API_HASH").then(|| "hash-value".to_string())
        });
        let config = Config::from_model(model, None, Kind::Gateway, lookup).unwrap();
        let settings = TelegramSettings::from_config(&config).unwrap();
        assert_eq!(
            settings.session_file,
            PathBuf::from("/var/lib/tg-gateway/telegram.session")
        );
        assert_eq!(settings.api_id, 1234567);
        assert_eq!(settings.api_hash.expose(), "hash-value");
        assert_eq!(settings.update_buffer, 10_000);
        assert_eq!(settings.reconcile_interval, Duration::from_secs(300));
        assert_eq!(settings.channels.len(), 3);
        assert!(!format!("{settings:?}").contains("hash-value"));
    }

    #[test]
    fn api_id_must_fit_telegram() {
        assert_eq!(api_id(1234567).unwrap(), 1234567);
        assert!(api_id(0).is_err());
        assert!(api_id(i64::from(i32::MAX) + 1).is_err());
    }
}
