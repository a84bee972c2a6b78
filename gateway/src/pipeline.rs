//! The ingestion pipeline every source feeds:
//! batch -> dedup (Redis) -> store + outbox (PostgreSQL, one transaction) -> publish
//! (RabbitMQ, confirms) -> mark published.
//!
//! Three tasks joined by bounded channels, so a slow stage slows the source instead of
//! anything being dropped: the batcher (which also runs dedup), the writer (which retries
//! a batch with backoff until the database takes it), and the publisher (which publishes
//! what the writer hands over and, whenever the broker failed or fell behind, drains the
//! outbox table itself, oldest first per channel).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::cache::{self, CacheWriter};
use crate::config::GatewayConfig;
use crate::dedup::{self, Dedup, Verdict};
use crate::health::{self, Health};
use crate::metrics as m;
use crate::publish::Publisher;
use crate::source::{EventSink, Received, SourceEvent};
use crate::store::{OutboxRow, Store};

/// Longest pause between retries of a failing stage.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the outbox depth and the dependencies are probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Longest wait for one health probe's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle publisher asks the broker for a round trip: a broker frozen with the
/// connection open shows down within this plus PROBE_TIMEOUT (3 s).
const BROKER_PROBE_INTERVAL: Duration = Duration::from_secs(1);

fn no_answer() -> String {
    format!("no answer within {PROBE_TIMEOUT:?}")
}

/// Tuning that is not in the model.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events a source may queue before `send` waits.
    pub queue: usize,
    /// Database connections.
    pub pool_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            queue: 20_000,
            pool_size: 4,
        }
    }
}

/// A running pipeline.
pub struct Pipeline {
    pub store: Arc<Store>,
    pub health: Health,
    batcher: JoinHandle<()>,
    writer: JoinHandle<()>,
    publisher: JoinHandle<()>,
    prober: JoinHandle<()>,
    stop_publisher: watch::Sender<bool>,
    outbox_depth: Arc<AtomicI64>,
}

/// How long the publisher may take to finish its publish once told to stop.
pub(crate) const PUBLISHER_GRACE: Duration = Duration::from_millis(500);

fn backoff(attempt: u32) -> Duration {
    let millis = 100u64.saturating_mul(1u64 << attempt.min(6));
    Duration::from_millis(millis).min(MAX_BACKOFF)
}

fn channel_counter(name: &'static str, channel_id: i64, n: u64) {
    if n > 0 {
        metrics::counter!(name, "channel" => m::channel_label(channel_id)).increment(n);
    }
}

impl Pipeline {
    /// Starts the pipeline; returns it and the sink sources feed.
    pub fn start(
        config: &GatewayConfig,
        health: Health,
        options: Options,
    ) -> Result<(Self, EventSink)> {
        let store = Arc::new(Store::new(
            &config.database.config,
            &config.database.schema,
            options.pool_size,
        )?);
        let dedup = Dedup::new(&config.redis, config.dedup_ttl)?;
        let probe_dedup = Dedup::new(&config.redis, config.dedup_ttl)?;
        let (sink, events) = EventSink::channel(options.queue);
        // One batch waits while the writer stores another; the next one grows meanwhile.
        let (batches, batches_rx) = mpsc::channel::<Batch>(1);
        let (handoff, handoff_rx) = mpsc::channel::<Vec<OutboxRow>>(64);
        let behind = Arc::new(AtomicBool::new(true));
        let (stop_publisher, stop_rx) = watch::channel(false);
        let outbox_depth = Arc::new(AtomicI64::new(0));

        let batcher = tokio::spawn(run_batcher(
            events,
            batches,
            dedup,
            health.clone(),
            config.batch_size,
            config.batch_delay,
        ));
        let caches = config
            .caches
            .iter()
            .map(|target| CacheWriter::new(target.clone()))
            .collect::<Result<Vec<_>>>()?;
        let writer = tokio::spawn(run_writer(
            batches_rx,
            store.clone(),
            Dedup::new(&config.redis, config.dedup_ttl)?,
            caches,
            handoff,
            behind.clone(),
            health.clone(),
        ));
        let publisher = tokio::spawn(run_publisher(
            handoff_rx,
            Publisher::new(config.broker.clone()),
            config.batch_size,
            store.clone(),
            behind.clone(),
            health.clone(),
            stop_rx.clone(),
        ));
        let prober = tokio::spawn(run_prober(
            store.clone(),
            probe_dedup,
            health.clone(),
            outbox_depth.clone(),
            behind,
            stop_rx,
        ));
        Ok((
            Pipeline {
                store,
                health,
                batcher,
                writer,
                publisher,
                prober,
                stop_publisher,
                outbox_depth,
            },
            sink,
        ))
    }

    /// Last probed outbox depth.
    pub fn outbox_depth(&self) -> i64 {
        self.outbox_depth.load(Ordering::Relaxed)
    }

    /// Waits until every event sent before all sinks were dropped is stored; then gives
    /// the publisher up to `drain` to empty the outbox, and stops.
    /// `interrupt` (a termination signal) ends the waiting early, as the deadline does.
    pub async fn finish(
        mut self,
        drain: Duration,
        interrupt: impl Future<Output = ()>,
    ) -> Result<i64> {
        let deadline = tokio::time::Instant::now() + drain;
        let interrupt = async {
            interrupt.await;
            tracing::info!("stopping: no longer waiting for the outbox to drain");
        };
        tokio::pin!(interrupt);
        // What was received is stored first. A writer that cannot reach the database by
        // the deadline is cut off: its batch was never stored, so the source delivers it
        // again (catch-up after a restart, or the replay run again).
        let stored = tokio::select! {
            stored = tokio::time::timeout_at(deadline, async {
                let _ = (&mut self.batcher).await;
                let _ = (&mut self.writer).await;
            }) => stored.is_ok(),
            () = &mut interrupt => false,
        };
        if !stored {
            tracing::warn!("stopping before the database took the last batch");
            self.batcher.abort();
            self.writer.abort();
        }
        let mut depth = self.store.outbox_depth().await.unwrap_or(-1);
        while depth != 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = &mut interrupt => break,
            }
            depth = self.store.outbox_depth().await.unwrap_or(-1);
        }
        let _ = self.stop_publisher.send(true);
        // A publish waiting on a broker that does not answer is cut off: its rows stay
        // unpublished in the outbox and go out on the next start.
        if tokio::time::timeout(PUBLISHER_GRACE, &mut self.publisher)
            .await
            .is_err()
        {
            self.publisher.abort();
        }
        self.prober.abort();
        Ok(depth)
    }
}

/// A deduplicated batch on its way to the database.
struct Batch {
    events: Vec<Received>,
    /// Dedup keys claimed for this batch's new messages, committed after the transaction.
    keys: Vec<String>,
}

async fn run_batcher(
    mut events: mpsc::Receiver<Received>,
    batches: mpsc::Sender<Batch>,
    mut dedup: Dedup,
    health: Health,
    batch_size: usize,
    batch_delay: Duration,
) {
    loop {
        let Some(first) = events.recv().await else {
            return;
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + batch_delay;
        let mut closed = false;
        // A batch goes as soon as the writer is free (low latency when traffic is light),
        // and grows while the writer is busy (large batches under load), up to
        // `batch_size` or `batch_delay`.
        let mut permit = None;
        while batch.len() < batch_size {
            match events.try_recv() {
                Ok(event) => {
                    batch.push(event);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Some(event) => batch.push(event),
                    None => { closed = true; break; }
                },
                reserved = batches.reserve() => match reserved {
                    Ok(reserved) => { permit = Some(reserved); break; }
                    Err(_) => return,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let batch = deduplicate(batch, &mut dedup, &health).await;
        if !batch.events.is_empty() {
            match permit {
                Some(permit) => permit.send(batch),
                None => {
                    if batches.send(batch).await.is_err() {
                        return;
                    }
                }
            }
        }
        if closed {
            return;
        }
    }
}

/// Drops duplicates within the batch and those Redis has seen; keeps everything else.
async fn deduplicate(batch: Vec<Received>, dedup: &mut Dedup, health: &Health) -> Batch {
    let mut seen = HashSet::new();
    let mut kept = Vec::with_capacity(batch.len());
    let mut received: BTreeMap<i64, u64> = BTreeMap::new();
    let mut duplicates: BTreeMap<i64, u64> = BTreeMap::new();
    for event in batch {
        match &event.event {
            SourceEvent::New(message) => {
                *received.entry(message.channel_id).or_default() += 1;
                if seen.insert((message.channel_id, message.message_id)) {
                    kept.push(event);
                } else {
                    *duplicates.entry(message.channel_id).or_default() += 1;
                }
            }
            _ => kept.push(event),
        }
    }
    let news: Vec<usize> = kept
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.event, SourceEvent::New(_)))
        .map(|(i, _)| i)
        .collect();
    let keys: Vec<String> = news
        .iter()
        .map(|&i| match &kept[i].event {
            SourceEvent::New(m) => dedup::key(m.channel_id, m.message_id),
            _ => String::new(),
        })
        .collect();
    let started = Instant::now();
    let verdicts = dedup.check(&keys).await;
    let mut final_keys = Vec::with_capacity(keys.len());
    match verdicts {
        Ok(verdicts) => {
            metrics::histogram!(m::DEDUP_DURATION).record(started.elapsed().as_secs_f64());
            health.set(health::REDIS, true, "");
            let mut drop = vec![false; kept.len()];
            for ((&index, key), verdict) in news.iter().zip(keys).zip(verdicts) {
                if verdict == Verdict::Duplicate {
                    drop[index] = true;
                    *duplicates
                        .entry(kept[index].event.channel_id())
                        .or_default() += 1;
                } else {
                    final_keys.push(key);
                }
            }
            let mut index = 0;
            kept.retain(|_| {
                let keep = !drop[index];
                index += 1;
                keep
            });
        }
        Err(error) => {
            // Redis is an optimisation: the unique constraint still stops duplicates.
            health.set(health::REDIS, false, error.to_string());
            for &index in &news {
                metrics::counter!(m::FAILED, "channel" => m::channel_label(kept[index].event.channel_id()), "stage" => "dedup").increment(1);
            }
        }
    }
    for (channel, n) in received {
        channel_counter(m::RECEIVED, channel, n);
    }
    for (channel, n) in duplicates {
        channel_counter(m::DEDUPLICATED, channel, n);
    }
    Batch {
        events: kept,
        keys: final_keys,
    }
}

/// Waits for the next batch; meanwhile keeps the read caches' leases and warms what their
/// readers asked for. `None` once the batcher is gone.
async fn next_batch(
    batches: &mut mpsc::Receiver<Batch>,
    caches: &mut [CacheWriter],
    store: &Store,
) -> Option<Batch> {
    loop {
        for cache in caches.iter_mut() {
            cache.tick(store).await;
        }
        if caches.is_empty() {
            return batches.recv().await;
        }
        tokio::select! {
            batch = batches.recv() => return batch,
            () = tokio::time::sleep(cache::RENEW_EVERY) => {}
        }
    }
}

async fn run_writer(
    mut batches: mpsc::Receiver<Batch>,
    store: Arc<Store>,
    mut dedup: Dedup,
    mut caches: Vec<CacheWriter>,
    handoff: mpsc::Sender<Vec<OutboxRow>>,
    behind: Arc<AtomicBool>,
    health: Health,
) {
    while let Some(batch) = next_batch(&mut batches, &mut caches, &store).await {
        // Readers bypass these channels' cache from before the commit until it has the rows.
        let channels: Vec<i64> = batch.events.iter().map(|e| e.event.channel_id()).collect();
        let mut marks = Vec::with_capacity(caches.len());
        for cache in caches.iter_mut() {
            marks.push(cache.before_commit(&channels).await);
        }
        let mut attempt = 0;
        let outcome = loop {
            let started = Instant::now();
            match store.write_batch(&batch.events).await {
                Ok(outcome) => {
                    metrics::histogram!(m::STORE_DURATION).record(started.elapsed().as_secs_f64());
                    health.set(health::POSTGRES, true, "");
                    break outcome;
                }
                Err(error) => {
                    // Keep the batch and retry: nothing received is dropped.
                    health.set(health::POSTGRES, false, format!("{error:#}"));
                    if attempt == 0 {
                        for event in &batch.events {
                            metrics::counter!(m::FAILED, "channel" => m::channel_label(event.event.channel_id()), "stage" => "store").increment(1);
                        }
                        tracing::warn!("storing a batch failed, retrying: {error:#}");
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
            }
        };
        if dedup.commit(&batch.keys).await.is_err() {
            // The claims expire with the TTL; a replay meanwhile goes to the database.
            health.set(health::REDIS, false, "cannot mark stored messages in redis");
        }
        record_stored(&outcome);
        // The cache has the batch before it is published: whoever hears of an edit or a
        // delete never reads the old version from the API.
        let changed: Vec<(i64, i64)> = outcome
            .outbox
            .iter()
            .map(|row| (row.channel_id, row.message_id))
            .collect();
        for (cache, mark) in caches.iter_mut().zip(marks) {
            if let Some(mark) = mark {
                cache.after_commit(&store, mark, &changed).await;
            }
        }
        if attempt > 0 {
            // A failed attempt may have committed (its answer lost in a cut), leaving rows
            // this retry did not insert again and so cannot hand over: the publisher drains
            // the table first, in order, and that includes this batch.
            behind.store(true, Ordering::SeqCst);
        } else if !outcome.outbox.is_empty() && handoff.try_send(outcome.outbox).is_err() {
            // The publisher is behind or gone: it reads the rows from the outbox instead.
            behind.store(true, Ordering::SeqCst);
        }
    }
    for cache in caches.iter_mut() {
        cache.leave().await;
    }
}

fn record_stored(outcome: &crate::store::BatchOutcome) {
    let now = chrono::Utc::now();
    let mut per_channel: BTreeMap<i64, (u64, chrono::DateTime<chrono::Utc>)> = BTreeMap::new();
    for (channel, posted_at) in &outcome.stored {
        let entry = per_channel.entry(*channel).or_insert((0, *posted_at));
        entry.0 += 1;
        entry.1 = entry.1.max(*posted_at);
    }
    for (channel, (n, newest)) in per_channel {
        channel_counter(m::STORED, channel, n);
        let label = m::channel_label(channel);
        metrics::gauge!(m::LAST_MESSAGE_TIMESTAMP, "channel" => label.clone())
            .set(newest.timestamp_millis() as f64 / 1000.0);
        let lag = (now - newest).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!(m::INGESTION_LAG, "channel" => label).set(lag);
    }
    for channel in &outcome.edits {
        channel_counter(m::EDITS, *channel, 1);
    }
    for (channel, n) in &outcome.deletes {
        channel_counter(m::DELETES, *channel, *n as u64);
    }
}

/// Publishes what the writer hands over, in chunks of at most `batch_size` rows (also when
/// draining the table): what a crash or a lost connection can make go out twice is at
/// most the one chunk whose confirms were in flight.
async fn run_publisher(
    mut handoff: mpsc::Receiver<Vec<OutboxRow>>,
    mut publisher: Publisher,
    batch_size: usize,
    store: Arc<Store>,
    behind: Arc<AtomicBool>,
    health: Health,
    mut stop: watch::Receiver<bool>,
) {
    // Highest outbox id this publisher has published (or found published): rows handed
    // over at or below it were already drained from the table.
    let mut watermark: i64 = 0;
    let mut attempt = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        check_broker(&mut publisher, &health).await;
        if behind.swap(false, Ordering::SeqCst) {
            let chunk = i64::try_from(batch_size).unwrap_or(i64::MAX);
            match drain(&mut publisher, &store, &health, chunk, &mut watermark).await {
                Ok(()) => attempt = 0,
                Err(error) => {
                    behind.store(true, Ordering::SeqCst);
                    if attempt == 0 {
                        tracing::warn!("draining the outbox failed, retrying: {error:#}");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(attempt)) => {}
                        _ = stop.changed() => {}
                    }
                    attempt += 1;
                    continue;
                }
            }
        }
        let rows = tokio::select! {
            rows = handoff.recv() => rows,
            _ = tokio::time::sleep(BROKER_PROBE_INTERVAL) => {
                probe_broker(&mut publisher, &health).await;
                continue;
            }
            _ = stop.changed() => continue,
        };
        let Some(rows) = rows else {
            // The writer is gone; publish what the table still holds until stopped.
            behind.store(true, Ordering::SeqCst);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        if behind.load(Ordering::SeqCst) {
            // Older rows wait in the table: the drain at the top of the loop publishes them
            // and these (committed too) after them, so a channel never goes out of order.
            continue;
        }
        let rows: Vec<OutboxRow> = rows.into_iter().filter(|r| r.id > watermark).collect();
        if rows.is_empty() {
            continue;
        }
        match publish_rows(&mut publisher, &store, &health, &rows).await {
            Ok(max_id) => watermark = watermark.max(max_id),
            Err(_) => behind.store(true, Ordering::SeqCst),
        }
    }
}

/// Connects when not connected and says so in /health: the broker is checked from the
/// start and while nothing is published, not only when a row goes out. A lost connection
/// is reported before the reconnect attempt, which may take its whole timeout.
async fn check_broker(publisher: &mut Publisher, health: &Health) {
    if publisher.is_connected() {
        return;
    }
    if health.is_up(health::RABBITMQ) {
        health.set(health::RABBITMQ, false, "connection lost, reconnecting");
    }
    match publisher.connect().await {
        Ok(()) => health.set(health::RABBITMQ, true, ""),
        Err(error) => health.set(health::RABBITMQ, false, format!("{error:#}")),
    }
}

/// While nothing is published: a round trip within PROBE_TIMEOUT, so a broker that
/// froze with the connection open shows down within BROKER_PROBE_INTERVAL + PROBE_TIMEOUT.
async fn probe_broker(publisher: &mut Publisher, health: &Health) {
    if !publisher.is_connected() {
        return;
    }
    match publisher.probe(PROBE_TIMEOUT).await {
        Ok(()) => health.set(health::RABBITMQ, true, ""),
        Err(error) => {
            health.set(health::RABBITMQ, false, format!("{error:#}"));
            publisher.reset().await;
        }
    }
}

/// Publishes rows and marks the confirmed ones; an error when any row was not confirmed
/// (those stay in the outbox). Returns the highest id handled.
async fn publish_rows(
    publisher: &mut Publisher,
    store: &Store,
    health: &Health,
    rows: &[OutboxRow],
) -> Result<i64> {
    let started = Instant::now();
    let outcome = publisher.publish(rows, health).await;
    let elapsed = started.elapsed().as_secs_f64();
    let confirmed: Vec<&OutboxRow> = outcome.confirmed.iter().map(|&i| &rows[i]).collect();
    if !confirmed.is_empty() {
        metrics::histogram!(m::PUBLISH_DURATION).record(elapsed);
        let ids: Vec<i64> = confirmed.iter().map(|r| r.id).collect();
        // The broker has them: keep trying to record that, or they are published twice.
        let mut attempt = 0;
        while let Err(error) = store.mark_published(&ids).await {
            health.set(health::POSTGRES, false, format!("{error:#}"));
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
        let now = Instant::now();
        let mut per_channel: BTreeMap<i64, u64> = BTreeMap::new();
        for row in &confirmed {
            *per_channel.entry(row.channel_id).or_default() += 1;
            if let Some(at) = row.received {
                metrics::histogram!(m::END_TO_END_DURATION)
                    .record(now.duration_since(at).as_secs_f64());
            }
        }
        for (channel, n) in per_channel {
            channel_counter(m::PUBLISHED, channel, n);
        }
    }
    match outcome.error {
        None => {
            health.set(health::RABBITMQ, true, "");
            Ok(rows.iter().map(|r| r.id).max().unwrap_or(0))
        }
        Some(error) => {
            health.set(health::RABBITMQ, publisher.is_connected(), error.clone());
            let done: HashSet<usize> = outcome.confirmed.iter().copied().collect();
            for (index, row) in rows.iter().enumerate() {
                if !done.contains(&index) {
                    metrics::counter!(m::FAILED, "channel" => m::channel_label(row.channel_id), "stage" => "publish").increment(1);
                }
            }
            Err(anyhow::anyhow!(error))
        }
    }
}

/// Publishes everything unpublished in the table, oldest first per channel.
async fn drain(
    publisher: &mut Publisher,
    store: &Store,
    health: &Health,
    chunk: i64,
    watermark: &mut i64,
) -> Result<()> {
    // Rows committed after this read reach the publisher through the handoff.
    let mut failures = Vec::new();
    loop {
        let channels = store.unpublished_channels().await?;
        let mut progressed = false;
        for channel in channels {
            let rows = store.unpublished(channel, chunk).await?;
            if rows.is_empty() {
                continue;
            }
            let max_id = rows.iter().map(|r| r.id).max().unwrap_or(0);
            match publish_rows(publisher, store, health, &rows).await {
                Ok(_) => {
                    progressed = true;
                    *watermark = (*watermark).max(max_id);
                }
                Err(error) => failures.push(format!("channel {channel}: {error}")),
            }
        }
        if !failures.is_empty() {
            return Err(anyhow::anyhow!(failures.join("; ")));
        }
        if !progressed {
            return Ok(());
        }
    }
}

async fn run_prober(
    store: Arc<Store>,
    mut dedup: Dedup,
    health: Health,
    outbox_depth: Arc<AtomicI64>,
    behind: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut previous_depth = 0;
    loop {
        // A server that holds the connection open and never answers is down too: each
        // probe has PROBE_TIMEOUT, so /health says so within PROBE_INTERVAL + PROBE_TIMEOUT.
        match tokio::time::timeout(PROBE_TIMEOUT, store.outbox_depth()).await {
            Ok(Ok(depth)) => {
                health.set(health::POSTGRES, true, "");
                outbox_depth.store(depth, Ordering::Relaxed);
                metrics::gauge!(m::OUTBOX_DEPTH).set(depth as f64);
            }
            Ok(Err(error)) => health.set(health::POSTGRES, false, format!("{error:#}")),
            Err(_) => health.set(health::POSTGRES, false, no_answer()),
        }
        match tokio::time::timeout(PROBE_TIMEOUT, dedup.ping()).await {
            Ok(Ok(())) => health.set(health::REDIS, true, ""),
            Ok(Err(error)) => health.set(health::REDIS, false, error.to_string()),
            Err(_) => health.set(health::REDIS, false, no_answer()),
        }
        // Retry from the table while the broker is down, and as a safety net whenever
        // rows stay unpublished across two probes.
        let depth = outbox_depth.load(Ordering::Relaxed);
        if !health.is_up(health::RABBITMQ) || (depth > 0 && previous_depth > 0) {
            behind.store(true, Ordering::SeqCst);
        }
        previous_depth = depth;
        tokio::select! {
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}
